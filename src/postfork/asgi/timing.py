"""Per-request timing for ASGI: ``Server-Timing``, ``X-Worker`` and one access-log line per
request, with the WSGI middleware's names and options (the mechanism is
``postfork.observe.timing``'s). The request's timing lives in a context variable of its task;
sync code that the framework runs in a thread (FastAPI's ``def`` endpoints, Django's views)
gets a copy of that context, so its checkouts are counted too."""

from __future__ import annotations

import time

from ..observe.timing import Request, RequestTiming, TimingBase, _current
from .types import WARMUP_SCOPE_KEY, ASGIApp, Message, Receive, Scope, Send

__all__ = ["TimingMiddleware", "request_of"]


def request_of(scope: Scope) -> Request:
    query: bytes = scope.get("query_string", b"")
    return Request(scope.get("method", ""), scope.get("path", ""), query.decode("latin-1"))


class TimingMiddleware(TimingBase):
    """``Server-Timing``, ``X-Worker`` and one access-log line per HTTP request of an ASGI app.

    ``access_log_format``: "logfmt" (default), "json" or "off". The line is logged once the
    app returned (the response sent), so ``duration_ms`` covers sending it; ``app`` in
    Server-Timing stops when the app starts its response. ``observers`` are called after each
    response with (request, timing, status, seconds). Other scopes (websocket, lifespan) pass
    through untouched.
    """

    def __init__(self, app: ASGIApp, *, access_log_format: str = "logfmt") -> None:
        super().__init__(access_log_format=access_log_format)
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get(WARMUP_SCOPE_KEY):
            # the lifespan's warm-up runs through the app but is not one of the server's
            # requests: not numbered, not in the access log, metrics or the exit line
            await self.app(scope, receive, send)
            return
        served = self.requests.next()
        pid, number = served.pid, served.count
        timing = RequestTiming()
        token = _current.set(timing)
        status = 0
        worker = f"{pid}/{number}".encode()

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                timing.app = time.perf_counter() - timing.started
                status = int(message["status"])
                headers = [
                    *message.get("headers", ()),
                    (b"server-timing", timing.server_timing().encode()),
                    (b"x-worker", worker),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            _current.reset(token)
            seconds = time.perf_counter() - timing.started
            self.finished(request_of(scope), timing, status or 500, seconds, pid, number)
