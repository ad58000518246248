"""Per-request timing for WSGI: ``Server-Timing``, ``X-Worker`` and one access-log line per
request (the mechanism is ``postfork.observe.timing``'s, shared with ASGI)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from ..observe.timing import (
    Request,
    RequestTiming,
    TimingBase,
    WorkerRequests,
    _current,
)
from ..warmup import WARMUP_KEY
from .body import ClosingBody

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
TIMING_KEY = "postfork.timing"  # environ key: this request's RequestTiming

__all__ = ["TIMING_KEY", "WARMUP_KEY", "RequestTiming", "TimingMiddleware", "WorkerRequests"]


def request_of(environ: dict[str, Any]) -> Request:
    return Request(
        environ.get("REQUEST_METHOD", ""),
        environ.get("PATH_INFO", ""),
        environ.get("QUERY_STRING", ""),
    )


class TimingMiddleware(TimingBase):
    """``Server-Timing``, ``X-Worker`` and one access-log line per request, for a WSGI app.

    ``access_log_format``: "logfmt" (default), "json" or "off". The line is logged when the
    server closes the response, so ``duration_ms`` covers sending it; ``app`` in Server-Timing
    stops when the application starts its response. ``observers`` are called after each
    response with (request, timing, status, seconds).
    """

    def __init__(self, app: WSGIApp, *, access_log_format: str = "logfmt") -> None:
        super().__init__(access_log_format=access_log_format)
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get(WARMUP_KEY):  # postfork's synthetic warm-up: not one of the server's
            return self._warmup(environ, start_response)
        served = self.requests.next()
        pid, number = served.pid, served.count
        timing = RequestTiming()
        token = _current.set(timing)
        environ[TIMING_KEY] = timing
        status_code = [0]
        worker = f"{pid}/{number}"  # worker_header(), inline: this runs on every request

        def timed_start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            timing.app = time.perf_counter() - timing.started
            status_code[0] = int(status.split(" ", 1)[0])
            headers = [*headers, ("Server-Timing", timing.server_timing()), ("X-Worker", worker)]
            return start_response(status, headers, *exc)

        try:
            body = self.app(environ, timed_start_response)
        finally:
            _current.reset(token)

        def finished() -> None:
            seconds = time.perf_counter() - timing.started
            self.finished(request_of(environ), timing, status_code[0], seconds, pid, number)

        return ClosingBody(body, finished)

    def _warmup(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """The warm-up runs through the app (that is its point) but is not a request the
        server counted: not numbered, not in the access log, metrics or the exit line."""
        timing = RequestTiming()
        token = _current.set(timing)
        environ[TIMING_KEY] = timing
        try:
            return self.app(environ, start_response)
        finally:
            _current.reset(token)
