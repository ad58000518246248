"""Sampled cProfile around WSGI requests (the mechanism is ``postfork.observe.profiling``'s)."""

from __future__ import annotations

import cProfile
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..observe.profiling import Profiler, ProfileSettings
from .body import ClosingBody
from .timing import WSGIApp, request_of

__all__ = ["ProfileSettings", "ProfilingMiddleware"]


class ProfilingMiddleware(Profiler):
    """cProfile around the sampled requests; the profile goes to ``postfork.profile``.

    The response body is collected inside the profile (a streamed body is buffered for a
    profiled request); the server's ``close()`` of the body runs outside it.
    """

    def __init__(
        self, app: WSGIApp, settings: ProfileSettings, *, rng: random.Random | None = None
    ) -> None:
        super().__init__(settings, rng=rng)
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        number = self.sample()
        if number is None:
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
        self.report(profiler, request_of(environ), number, status[0], elapsed_ms)
        return ClosingBody(chunks, getattr(body, "close", lambda: None))
