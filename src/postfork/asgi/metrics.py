"""``GET /metrics`` for an ASGI app (the metrics themselves: ``postfork.observe.metrics``)."""

from __future__ import annotations

import asyncio

from ..observe.metrics import METRICS_PATH, ServiceMetrics, ensure_multiprocess_dir
from .types import ASGIApp, Receive, Scope, Send

__all__ = ["METRICS_PATH", "MetricsEndpoint", "ServiceMetrics", "ensure_multiprocess_dir"]


class MetricsEndpoint:
    """Answers ``GET /metrics`` in Prometheus text format; passes everything else on. The
    scrape reads the workers' files (milliseconds): it runs in the loop's default executor,
    not on the loop."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != METRICS_PATH:
            await self.app(scope, receive, send)
            return
        body = await asyncio.get_running_loop().run_in_executor(None, self.metrics.render)
        headers = [
            (b"content-type", self.metrics.content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
