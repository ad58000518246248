"""One synthetic GET through the app, before a worker's first real request.

A fresh worker's first request pays for what only a request loads or touches: the view's code
and the ORM's compiled statements, lazily built caches, pages copied after fork. Sent by
postfork once the worker is warm, it costs the same, but before the server hands the worker
a request. One mechanism for every face: a WSGI app (``install(..., warmup=...)`` with
:func:`warmup_request`), an ASGI app (``postfork.asgi``'s ``warmup_path``) and Django's handlers
(``POSTFORK_WARMUP_PATH``). The request carries :data:`WARMUP_KEY` in its environ or scope:
postfork's middlewares leave it out of the worker's request count, access log and metrics.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from .errors import ConfigError

log = logging.getLogger("postfork.install")

WARMUP_KEY = "postfork.warmup"  # True in the warm-up request's WSGI environ or ASGI scope
USER_AGENT = "postfork-warmup"
# How many times the warm-up GET is sent. One request loads and compiles what only a request
# touches, but a worker forked from a master that never served runs the app's code for the
# first time: CPython quickens and specializes a function's bytecode only once it has run a
# few times, and the pages copied after fork are touched progressively. Measured in a fresh
# fork of the benchmarks' Flask-SQLAlchemy shop (15 forks each, first request against the
# median of the 7th-12th): 1 warm-up GET 1.55-1.67x, 3 GETs 1.04-1.24x, 8 GETs 1.13x; the
# Django shop: 1.32x, 3: 1.05x, 5: 0.97x. Each GET costs one steady request (~3-5 ms there).
REPEAT = 3

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ASGIApp = Callable[..., Awaitable[None]]


def checked_repeat(repeat: int) -> int:
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ConfigError(f"the warm-up repeat must be a whole number >= 1, got {repeat!r}")
    return repeat


def failed(status: int) -> bool:
    """A warm-up answer that ends the repeats and is worth a warning: an error, or none."""
    return status >= 400 or status == 0


def checked_path(path: str) -> str:
    """``path`` if it is a path of this app (``/...``, a query string allowed), else a clear
    error: the warm-up never leaves the process, so a URL is a mistake."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(
            f"a warm-up path must be a path starting with '/' (e.g. '/healthz'), got {path!r}"
        )
    return path


def wsgi_get(app: WSGIApp, path: str, host: str = "localhost") -> int:
    """GET ``path`` through a WSGI app, as a server would call it; the response's status."""
    path_part, _, query = checked_path(path).partition("?")
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path_part,
        "QUERY_STRING": query,
        "SERVER_NAME": host,
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": host,
        "HTTP_USER_AGENT": USER_AGENT,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        WARMUP_KEY: True,
    }
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
        status.append(line)
        return lambda data: None  # the legacy write(): what it writes is dropped as the body is

    body = app(environ, start_response)
    try:
        for _chunk in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return int(status[0].split(" ", 1)[0]) if status else 0


async def asgi_get(
    app: ASGIApp,
    path: str,
    host: str = "localhost",
    state: MutableMapping[str, Any] | None = None,
) -> int:
    """GET ``path`` through an ASGI app, as a server would send it; the response's status.
    Once the response has ended, the client is said to have gone (Django's handler listens
    for that). ``state``: what the app's lifespan made, as a request's scope carries it."""
    path_part, _, query = checked_path(path).partition("?")
    status = 0
    answered = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path_part,
        "raw_path": path_part.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", host.encode()), (b"user-agent", USER_AGENT.encode())],
        "client": ("127.0.0.1", 0),
        "server": (host, 80),
        "state": dict(state or {}),  # a shallow copy, as servers give each request
        WARMUP_KEY: True,
    }
    await app(scope, receive, send)
    return status


def warmup_request(app: WSGIApp, path: str, *, repeat: int = REPEAT) -> Callable[[], None]:
    """For ``postfork.install(..., warmup=...)``: GET ``path`` through the WSGI ``app`` (Flask,
    Bottle, Falcon, Pyramid, any) in each new worker, ``repeat`` times (see :data:`REPEAT`).
    An answer of 400 or more is logged and ends it; a failure is the warm-up's (logged, the
    worker serves anyway)."""
    checked_path(path)
    checked_repeat(repeat)

    def warmup() -> None:
        for _ in range(repeat):
            status = wsgi_get(app, path)
            if failed(status):
                log.warning("warm-up request GET %s answered %s", path, status or "nothing")
                return

    warmup.__qualname__ = f"warmup_request({path!r})"
    return warmup
