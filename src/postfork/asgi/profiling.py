"""Sampled cProfile around ASGI requests, with the WSGI middleware's settings (the mechanism is
``postfork.observe.profiling``'s)."""

from __future__ import annotations

import cProfile
import random
import time

from ..observe.profiling import Profiler, ProfileSettings, profile_log
from .timing import request_of
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ProfileSettings", "ProfilingMiddleware"]


class ProfilingMiddleware(Profiler):
    """cProfile around the sampled HTTP requests; the profile goes to ``postfork.profile``.

    A profiler sees its thread, and an event loop's thread serves every request at once: the
    profile of a request also holds what the loop ran for others meanwhile (read it on a worker
    at low concurrency, or with ``first=`` after a respawn). One profile at a time per worker:
    a request sampled while another is profiled is not profiled (cProfile allows one).
    """

    def __init__(
        self, app: ASGIApp, settings: ProfileSettings, *, rng: random.Random | None = None
    ) -> None:
        super().__init__(settings, rng=rng)
        self.app = app
        self._profiling = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        number = self.sample() if scope["type"] == "http" else None
        if number is None:
            await self.app(scope, receive, send)
            return
        if self._profiling:
            profile_log.debug("request %d sampled while another is profiled: skipped", number)
            await self.app(scope, receive, send)
            return
        status = "-"

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        profiler = cProfile.Profile()
        self._profiling = True
        started = time.perf_counter()
        profiler.enable()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            profiler.disable()
            self._profiling = False
        elapsed_ms = (time.perf_counter() - started) * 1e3
        self.report(profiler, request_of(scope), number, status, elapsed_ms)
