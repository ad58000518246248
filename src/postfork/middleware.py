"""WSGI middleware that makes the tail visible: per-request timing and sampled profiling.

Both wrap any WSGI application. ``TimingMiddleware`` adds ``Server-Timing`` (db-connect,
pool-wait, db, app) and ``X-Worker`` (pid/request number since the worker's fork) to every
response and logs one access-log line per request through ``logging.getLogger("postfork.access")``.
``ProfilingMiddleware`` runs cProfile around the requests it samples and logs the ``pstats``
text through ``logging.getLogger("postfork.profile")`` (optionally also ``.prof`` files).
Profiling off means not wrapped at all: no cost.
"""

from __future__ import annotations

import cProfile
import io
import json
import logging
import os
import pstats
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from . import _fork, _servers, _timing
from .errors import ConfigError

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ACCESS_FORMATS = ("logfmt", "json", "off")
TIMING_KEY = "postfork.timing"  # environ key: this request's RequestTiming

access_log = logging.getLogger("postfork.access")
worker_log = logging.getLogger("postfork.worker")
profile_log = logging.getLogger("postfork.profile")


class WorkerRequests:
    """Requests this process has served since its fork (a forked child starts again at 1)."""

    def __init__(self) -> None:
        self.pid, self.count, self.since = os.getpid(), 0, time.monotonic()

    def next(self) -> int:
        if self.pid != os.getpid():
            self.pid, self.count = os.getpid(), 0
        if self.count == 0:
            self.since = time.monotonic()
        self.count += 1
        return self.count


class ClosingBody:
    """The application's body, with work to do once the server has sent it (``close()``)."""

    def __init__(self, body: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self._body, self._on_close = body, on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()


# -- timing ------------------------------------------------------------------------------


class TimingMiddleware:
    """``Server-Timing``, ``X-Worker`` and one access-log line per request.

    ``access_log``: "logfmt" (default), "json" or "off". The line is logged when the server
    closes the response, so ``duration_ms`` covers sending it; ``app_ms`` in Server-Timing
    stops when the application starts its response.
    """

    def __init__(self, app: WSGIApp, *, access_log_format: str = "logfmt") -> None:
        if access_log_format not in ACCESS_FORMATS:
            raise ConfigError(
                f"access log format must be one of {', '.join(ACCESS_FORMATS)}, "
                f"got {access_log_format!r}"
            )
        self.app = app
        self.format = access_log_format
        self.requests = WorkerRequests()
        self.observers: list[Callable[[dict[str, Any], _timing.RequestTiming, int, float], None]]
        self.observers = []  # called after each response: (environ, timing, status, seconds)
        _fork.add_exit_listener(self)

    def at_exit(self) -> None:
        """A worker's last words: how many requests it served and why it goes."""
        requests = self.requests
        if requests.pid != os.getpid() or requests.count == 0:
            return  # the master (or a process that never served): nothing to say
        worker_log.info(
            "pid %d: exiting after %d request(s) in %.1f s since its first: %s",
            requests.pid,
            requests.count,
            time.monotonic() - requests.since,
            _servers.exit_reason(requests.count),
        )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        number = self.requests.next()
        timing, token = _timing.begin()
        environ[TIMING_KEY] = timing
        status_code = [0]

        def timed_start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            timing.app = time.perf_counter() - timing.started
            status_code[0] = int(status.split(" ", 1)[0])
            headers = [
                *headers,
                ("Server-Timing", timing.server_timing()),
                ("X-Worker", f"{self.requests.pid}/{number}"),
            ]
            return start_response(status, headers, *exc)

        try:
            body = self.app(environ, timed_start_response)
        finally:
            _timing.end(token)

        def finished() -> None:
            seconds = time.perf_counter() - timing.started
            for observe in self.observers:
                observe(environ, timing, status_code[0], seconds)
            if self.format != "off" and access_log.isEnabledFor(logging.INFO):
                access_log.info(self._line(environ, timing, status_code[0], seconds, number))

        return ClosingBody(body, finished)

    def _line(
        self,
        environ: dict[str, Any],
        timing: _timing.RequestTiming,
        status: int,
        seconds: float,
        number: int,
    ) -> str:
        path = environ.get("PATH_INFO", "") or "/"
        if environ.get("QUERY_STRING"):
            path = f"{path}?{environ['QUERY_STRING']}"
        method = environ.get("REQUEST_METHOD", "")
        pid = self.requests.pid
        if self.format == "json":
            return json.dumps(
                {
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(seconds * 1e3, 3),
                    "pid": pid,
                    "request": number,
                    "connect_ms": round(timing.connect * 1e3, 3),
                    "db_ms": round(timing.db * 1e3, 3),
                    "wait_ms": round(timing.wait * 1e3, 3),
                },
                separators=(",", ":"),
            )
        return (
            f"method={_logfmt(method)} path={_logfmt(path)} status={status} "
            f"duration_ms={seconds * 1e3:.3f} pid={pid} request={number} "
            f"connect_ms={timing.connect * 1e3:.3f} db_ms={timing.db * 1e3:.3f} "
            f"wait_ms={timing.wait * 1e3:.3f}"
        )


_NEEDS_QUOTES = re.compile(r'[\s"=\\]|^$')


def _logfmt(text: str) -> str:
    """A logfmt value: bare when it can be, else quoted with JSON escapes (quotes, control
    characters: a client cannot forge a second field or a second line)."""
    return json.dumps(text) if _NEEDS_QUOTES.search(text) else text


# -- profiling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileSettings:
    """Which requests to profile; any rule that matches selects a request.

    ``every``: every Nth request of a worker; ``first``: a worker's first K requests after its
    fork; ``rate``: a random share (0-1); ``slower_than_ms``: then keep only profiles of
    requests at least this slow; ``top``: pstats lines; ``sort``: pstats sort key;
    ``dir``: also write ``<pid>-<request>.prof`` files there.
    """

    every: int = 0
    first: int = 0
    rate: float = 0.0
    slower_than_ms: float = 0.0
    top: int = 25
    sort: str = "cumulative"
    dir: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.every or self.first or self.rate)

    @classmethod
    def parse(cls, text: str) -> ProfileSettings:
        """``"every=100,first=2,rate=0.01,slower_than_ms=20,top=30,dir=/tmp/prof"``; empty or
        "off" disables profiling."""
        text = text.strip()
        if text in ("", "off"):
            return cls()
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in text.split(","):
            key, sep, raw = item.strip().partition("=")
            if not sep or key not in known:
                raise ConfigError(
                    f"profiling setting {item.strip()!r} is not NAME=VALUE with NAME one of "
                    f"{', '.join(known)}"
                )
            values[key] = _profile_value(key, raw.strip())
        settings = cls(**values)
        if not settings.enabled:
            raise ConfigError("profiling needs at least one of every=, first= or rate=")
        return settings

    def wants(self, number: int) -> bool:
        return (
            (self.first > 0 and number <= self.first)
            or (self.every > 0 and number % self.every == 0)
            or (self.rate > 0 and random.random() < self.rate)
        )


def _profile_value(key: str, raw: str) -> Any:
    if key in ("sort", "dir"):
        if key == "sort" and raw not in pstats.SortKey._value2member_map_:
            raise ConfigError(f"profiling sort={raw!r} is not a pstats sort key")
        return raw
    try:
        value = float(raw) if key in ("rate", "slower_than_ms") else int(raw)
    except ValueError:
        value = -1
    if value < 0 or (key == "rate" and value > 1) or (key == "top" and value == 0):
        raise ConfigError(f"profiling {key}={raw!r} is out of range")
    return value


class ProfilingMiddleware:
    """cProfile around the sampled requests; the profile goes to ``postfork.profile``.

    The response body is collected inside the profile (a streamed body is buffered for a
    profiled request); the server's ``close()`` of the body runs outside it.
    """

    def __init__(self, app: WSGIApp, settings: ProfileSettings) -> None:
        self.app = app
        self.settings = settings
        self.requests = WorkerRequests()
        if settings.dir:
            Path(settings.dir).mkdir(parents=True, exist_ok=True)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        number = self.requests.next()
        if not self.settings.wants(number):
            return self.app(environ, start_response)
        status = ["-"]

        def recording_start_response(value: str, headers: list[Any], *exc: Any) -> Any:
            status[0] = value.split(" ", 1)[0]
            return start_response(value, headers, *exc)

        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        try:
            body = self.app(environ, recording_start_response)
            chunks = list(body)
        finally:
            profiler.disable()
        elapsed_ms = (time.perf_counter() - started) * 1e3
        if elapsed_ms >= self.settings.slower_than_ms:
            self._report(profiler, environ, number, status[0], elapsed_ms)
        return ClosingBody(chunks, getattr(body, "close", lambda: None))

    def _report(
        self,
        profiler: cProfile.Profile,
        environ: dict[str, Any],
        number: int,
        status: str,
        elapsed_ms: float,
    ) -> None:
        pid = os.getpid()
        where = ""
        if self.settings.dir:
            path = Path(self.settings.dir) / f"{pid}-{number:06d}.prof"
            profiler.dump_stats(path)
            where = f" file={path}"
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats(self.settings.sort).print_stats(self.settings.top)
        profile_log.info(
            "profile pid=%d request=%d method=%s path=%s status=%s duration_ms=%.3f%s\n%s",
            pid,
            number,
            environ.get("REQUEST_METHOD", ""),
            environ.get("PATH_INFO", ""),
            status,
            elapsed_ms,
            where,
            text.getvalue().strip("\n"),
        )
