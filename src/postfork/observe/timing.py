"""Per-request timing, whatever the server protocol: what a request spent connecting, waiting
for the pool, holding a connection and in the application, the worker's request count since
its fork, and what is done once a response went out (observers, the access-log line).

The pool reports through its events. :class:`TimingBase` listens to every pool's checkout and
checkin and adds each lease to the :class:`RequestTiming` of the request in progress (a context
variable: under ASGI the request's task, and the threads its sync code runs on, see the same
one). Without a timing middleware nobody listens, and a checkout pays nothing for timing. The
middlewares themselves are adapters: ``postfork.wsgi.TimingMiddleware`` and
``postfork.asgi.TimingMiddleware``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, NamedTuple

from .. import fork
from ..errors import ConfigError
from ..pool import listen_all
from ..servers import uwsgi as uwsgi_server
from . import access_log

SERVER_TIMING_NAMES = ("db-connect", "pool-wait", "db", "app")

worker_log = logging.getLogger("postfork.worker")

_current: ContextVar[RequestTiming | None] = ContextVar("postfork_request_timing", default=None)


class Request(NamedTuple):
    """What the access line and the observers need of a request, from either protocol."""

    method: str
    path: str  # without the query string
    query: str


Observer = Callable[[Request, "RequestTiming", int, float], None]


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
        """The ``Server-Timing`` header value (milliseconds, as the header's ``dur`` wants), in
        the order of SERVER_TIMING_NAMES; one f-string: it is built for every response."""
        return (
            f"db-connect;dur={self.connect * 1e3:.3f}, pool-wait;dur={self.wait * 1e3:.3f}, "
            f"db;dur={self.db * 1e3:.3f}, app;dur={self.app * 1e3:.3f}"
        )


def parse_server_timing(value: str) -> dict[str, float]:
    """``Server-Timing`` as {name: milliseconds}; what it cannot read it leaves out."""
    parsed = {}
    for item in value.split(","):
        name, _, duration = item.strip().partition(";dur=")
        try:
            parsed[name] = float(duration)
        except ValueError:
            continue
    return parsed


def worker_header(pid: int, number: int) -> str:
    return f"{pid}/{number}"


def parse_worker(value: str) -> tuple[int, int] | None:
    """``X-Worker`` as (pid, the worker's request number), or None."""
    pid, _, number = value.strip().partition("/")
    return (int(pid), int(number)) if pid.isdigit() and number.isdigit() else None


# -- the pool reports here ---------------------------------------------------------------------


def current() -> RequestTiming | None:
    """The timing of the request this code serves, if a timing middleware runs."""
    return _current.get()


def report_checkout(wait_seconds: float, connect_seconds: float) -> None:
    """Add one checkout to the request in progress, if any (also for pools that are not
    postfork's: the bench's stock-SQLAlchemy baseline reports the same way)."""
    request = _current.get()
    if request is not None:
        request.wait += wait_seconds
        request.connect += connect_seconds
        request.connects += connect_seconds > 0.0


def report_held(seconds: float) -> None:
    request = _current.get()
    if request is not None:
        request.db += seconds


def _on_checkout(pool: Any, lease: Any, _get: Any = _current.get) -> None:
    # report_checkout(), inline with the context variable's getter bound: every checkout
    request = _get()
    if request is not None:
        connect = lease.connect_seconds
        request.wait += lease.wait_seconds
        request.connect += connect
        request.connects += connect > 0.0


def _on_checkin(pool: Any, lease: Any, _get: Any = _current.get) -> None:
    request = _get()
    if request is not None:
        request.db += lease.held_seconds


# -- per worker ------------------------------------------------------------------------------


class Served:
    """One process's requests: ``count`` since its fork, the first one at ``since``."""

    __slots__ = ("count", "pid", "since")

    def __init__(self) -> None:
        self.count, self.pid, self.since = 0, os.getpid(), time.monotonic()


class WorkerRequests:
    """Requests this process has served since its fork (a forked child starts again at 1)."""

    def __init__(self) -> None:
        self._served = fork.PerProcess(Served)

    def next(self) -> Served:
        """Count one more request; the returned record says its number and the pid."""
        served = self._served.get()
        if served.count == 0:
            served.since = time.monotonic()
        served.count += 1
        return served

    @property
    def pid(self) -> int:
        return self._served.pid

    def in_this_process(self) -> tuple[int, float]:
        """(requests served by this process, seconds since its first); (0, 0.0) if none."""
        if self._served.pid != os.getpid():
            return 0, 0.0
        served = self._served.get()
        return served.count, time.monotonic() - served.since if served.count else 0.0


# -- what both timing middlewares do -------------------------------------------------------------


class TimingBase:
    """``Server-Timing``, ``X-Worker`` and one access-log line per request, for a middleware of
    either protocol: it numbers the worker's requests, holds a request's timing in the context
    while the app runs, and once the response went out calls the ``observers`` (with the
    :class:`Request`, its timing, status and seconds) and logs the access line.

    ``access_log_format``: "logfmt" (default), "json" or "off".
    """

    def __init__(self, *, access_log_format: str = "logfmt") -> None:
        if access_log_format not in access_log.FORMATS:
            raise ConfigError(
                f"access log format must be one of {', '.join(access_log.FORMATS)}, "
                f"got {access_log_format!r}"
            )
        self.format = access_log_format
        self.requests = WorkerRequests()
        self.observers: list[Observer] = []
        listen_all("checkout", _on_checkout)
        listen_all("checkin", _on_checkin)
        fork.add_exit_listener(self)

    def at_exit(self) -> None:
        """A worker's last words: how many requests it served and why it goes."""
        served, seconds = self.requests.in_this_process()
        if served == 0:
            return  # the master (or a process that never served): nothing to say
        worker_log.info(
            "pid %d: exiting after %d request(s) in %.1f s since its first: %s",
            os.getpid(),
            served,
            seconds,
            uwsgi_server.exit_reason(served),
        )

    def finished(
        self,
        request: Request,
        timing: RequestTiming,
        status: int,
        seconds: float,
        pid: int,
        number: int,
    ) -> None:
        """Once the response went out: the observers, then the access line."""
        for observe in self.observers:
            observe(request, timing, status, seconds)
        if self.format != "off" and access_log.log.isEnabledFor(logging.INFO):
            line = access_log.render(self.format, request, timing, status, seconds, pid, number)
            access_log.log.info(line)
