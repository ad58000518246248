"""``GET /metrics`` for a WSGI app (the metrics themselves: ``postfork.observe.metrics``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..observe.metrics import METRICS_PATH, ServiceMetrics, ensure_multiprocess_dir

__all__ = ["METRICS_PATH", "MetricsEndpoint", "ServiceMetrics", "ensure_multiprocess_dir"]


class MetricsEndpoint:
    """Answers ``GET /metrics`` in Prometheus text format; passes everything else on."""

    def __init__(
        self,
        app: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]],
        metrics: ServiceMetrics,
    ) -> None:
        self.app = app
        self.metrics = metrics

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            return self.app(environ, start_response)
        body = self.metrics.render()
        start_response(
            "200 OK",
            [("Content-Type", self.metrics.content_type), ("Content-Length", str(len(body)))],
        )
        return [body]
