"""``X-Worker: pid/n`` and ``X-App-Ms`` on every response of a WSGI app, for the benchmarks that
tell a worker's first request from its steady ones (the header postfork's timing middleware
sets; here without postfork, so the stock variants carry it too). ``X-App-Ms``: from the
server's call into the app to the app starting its response."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def with_worker_header(app: WSGIApp) -> WSGIApp:
    served = {"pid": 0, "count": 0}  # a forked worker starts its own count

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        if served["pid"] != os.getpid():
            served["pid"], served["count"] = os.getpid(), 0
        served["count"] += 1
        worker = f"{served['pid']}/{served['count']}"

        def timed(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            app_ms = f"{(time.perf_counter() - started) * 1e3:.3f}"
            return start_response(
                status, [*headers, ("X-Worker", worker), ("X-App-Ms", app_ms)], *exc
            )

        return app(environ, timed)

    return wrapped
