"""Sampled cProfile around requests: finding where a slow request's time goes made a setting
instead of a code edit.

A profiling middleware (``postfork.wsgi.ProfilingMiddleware``, ``postfork.asgi.
ProfilingMiddleware``) profiles the requests its :class:`ProfileSettings` select and logs the
``pstats`` text through ``logging.getLogger("postfork.profile")`` (optionally also ``.prof``
files). Profiling off means not wrapped at all: no cost.
"""

from __future__ import annotations

import cProfile
import io
import logging
import os
import pstats
import random
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..validate import NON_NEGATIVE_INTEGER, NON_NEGATIVE_NUMBER, POSITIVE_INTEGER, PROBABILITY
from .timing import Request, WorkerRequests

profile_log = logging.getLogger("postfork.profile")


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

    def wants(self, number: int, draw: Callable[[], float] = random.random) -> bool:
        """Whether to profile a worker's request number ``number``; ``draw`` gives a random
        number in [0, 1) for ``rate``."""
        return (
            (self.first > 0 and number <= self.first)
            or (self.every > 0 and number % self.every == 0)
            or (self.rate > 0 and draw() < self.rate)
        )


_NUMBERS = {
    "every": NON_NEGATIVE_INTEGER,
    "first": NON_NEGATIVE_INTEGER,
    "rate": PROBABILITY,
    "slower_than_ms": NON_NEGATIVE_NUMBER,
    "top": POSITIVE_INTEGER,
}


def _profile_value(key: str, raw: str) -> Any:
    if key in ("sort", "dir"):
        if key == "sort" and raw not in pstats.SortKey._value2member_map_:
            raise ConfigError(f"profiling sort={raw!r} is not a pstats sort key")
        return raw
    try:
        return _NUMBERS[key].parse(raw)
    except ValueError as exc:
        raise ConfigError(f"profiling {key}={raw!r} is out of range: {exc}") from None


class Profiler:
    """The sampled profiling both middlewares do: which of a worker's requests to profile, and
    the report (``pstats`` text on ``postfork.profile``, optionally a ``.prof`` file)."""

    def __init__(self, settings: ProfileSettings, *, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.requests = WorkerRequests()
        self._draw = (rng or random.Random()).random
        if settings.dir:
            Path(settings.dir).mkdir(parents=True, exist_ok=True)

    def sample(self) -> int | None:
        """Count a request; its number in this worker if it is to be profiled, else None."""
        number = self.requests.next().count
        return number if self.settings.wants(number, self._draw) else None

    def report(
        self,
        profiler: cProfile.Profile,
        request: Request,
        number: int,
        status: str,
        elapsed_ms: float,
    ) -> None:
        if elapsed_ms < self.settings.slower_than_ms:
            return
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
            request.method,
            request.path,
            status,
            elapsed_ms,
            where,
            text.getvalue().strip("\n"),
        )
