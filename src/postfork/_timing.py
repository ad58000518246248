"""What the current request spent where, reported by the pool as it works.

The timing middleware opens a :class:`RequestTiming` for each request in a context variable;
every lease taken while it is open adds its pool wait, its connect and the time it held the
connection. Outside a request (no middleware, a background job) there is nothing to report
into and the pool pays one context-variable lookup per checkout.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

_current: ContextVar[RequestTiming | None] = ContextVar("postfork_request_timing", default=None)


class RequestTiming:
    __slots__ = ("app", "connect", "connects", "db", "started", "wait")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.connect = self.wait = self.db = 0.0
        self.app = 0.0  # set when the application starts its response
        self.connects = 0

    @property
    def paid_connect(self) -> bool:
        return self.connects > 0

    def server_timing(self) -> str:
        """The ``Server-Timing`` header value (milliseconds, as the header's ``dur`` wants)."""
        parts = (
            ("db-connect", self.connect),
            ("pool-wait", self.wait),
            ("db", self.db),
            ("app", self.app),
        )
        return ", ".join(f"{name};dur={seconds * 1e3:.3f}" for name, seconds in parts)


def begin() -> tuple[RequestTiming, Token[RequestTiming | None]]:
    timing = RequestTiming()
    return timing, _current.set(timing)


def end(token: Token[RequestTiming | None]) -> None:
    _current.reset(token)


def current() -> RequestTiming | None:
    return _current.get()
