"""The server's own request handling, run on requests of postfork's own before a new worker
accepts.

A server's request handling is largely Python: parsing a request, building its WSGI environ or
ASGI scope, writing the response (and, under an ASGI server, asyncio's socket transport). In
a new worker that code runs for the first time on the worker's first real request: the app's
warm-up request goes through the app alone and never reaches it. Here the worker's own server
code serves a few requests of postfork's own, each answered without the user's app, never
counted against the worker's request limit, never seen by the configuration's request hooks,
never access-logged. One mechanism, an adapter per server:

- gunicorn's WSGI workers (sync, gthread): :func:`warm_wsgi_worker`, from ``post_fork``;
- uvicorn (alone or as gunicorn's ``UvicornWorker``) and gunicorn's own ASGI worker:
  :func:`warm_asgi_server`, in the worker's event loop (the app's lifespan, or Django's
  warm-up under ASGI).

Another server (uWSGI's request handling is C; hypercorn), or internals that moved, leave the
first request to pay, as before: nothing here raises.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from .servers import gunicorn as gunicorn_server
from .warmup import REPEAT

log = logging.getLogger("postfork.server")

ProtocolFactory = Callable[[], asyncio.BaseProtocol]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Connection: close, so the server closes after answering and the client reads to the end.
REQUEST = (
    b"GET /postfork-warmup HTTP/1.1\r\nHost: localhost\r\nUser-Agent: postfork-warmup\r\n"
    b"Connection: close\r\n\r\n"
)
BODY = b'{"postfork":"warm-up"}'
ASGI_TIMEOUT = 2.0  # for all the repeats: each takes a few milliseconds

# uvicorn's HTTP protocols; its configuration imports the one it serves with
_UVICORN_PROTOCOLS = (
    ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol"),
    ("uvicorn.protocols.http.h11_impl", "H11Protocol"),
)


def warm_wsgi_worker(worker: Any, repeat: int = REPEAT) -> None:
    """gunicorn's WSGI request handling (its parser, the WSGI environ, the response), over a
    socket pair, ``repeat`` times: from ``post_fork``, before the worker accepts. Only for
    gunicorn's WSGI workers (its ASGI worker is warmed in its event loop)."""
    if not hasattr(worker, "handle_request") or getattr(worker, "cfg", None) is None:
        return
    try:
        from gunicorn import http
        from gunicorn.http import wsgi
    except ImportError:
        return
    parser_for = getattr(http, "get_parser", None) or http.RequestParser  # gunicorn < 23
    peer = ("127.0.0.1", 0)
    try:
        for _ in range(repeat):
            ours, theirs = socket.socketpair()
            with ours, theirs:
                theirs.sendall(REQUEST)
                request = next(parser_for(worker.cfg, ours, peer))
                response, _environ = wsgi.create(request, ours, peer, peer, worker.cfg)
                response.force_close()
                response.start_response("204 No Content", [("Content-Length", "0")])
                response.close()
    except Exception as exc:  # gunicorn's internals moved: the first request pays, as before
        log.debug("gunicorn's request handling not warmed: %r", exc)
        return
    _warmed("gunicorn", repeat)


async def warm_asgi_server(repeat: int = REPEAT) -> str | None:
    """The ASGI server this worker runs under serves ``repeat`` requests over loopback TCP,
    each answered by a stand-in app. Which server: gunicorn's ASGI worker is the worker
    object ``postfork.gunicorn``'s hooks saw forked; uvicorn's protocol is the one its
    configuration imported (or names, in a ``UvicornWorker`` not serving yet). Returns the
    server's name when it did, None otherwise. Never raises."""
    loop = asyncio.get_running_loop()
    server = "the server"
    try:
        server, factory = _asgi_protocol_factory(loop)
        if factory is None:
            return None
        async with asyncio.timeout(ASGI_TIMEOUT):
            # served as the server serves: asyncio's server accepting on a listening socket
            listening = await loop.create_server(factory, "127.0.0.1", 0)
            async with listening:
                address = listening.sockets[0].getsockname()
                for _ in range(repeat):
                    answer = await _exchange(loop, address)
                    if not answer.startswith(b"HTTP/1.1 200"):
                        raise RuntimeError(f"answered {answer[:40]!r}")
    except Exception as exc:  # the server's internals moved: the first request pays, as before
        log.debug("%s's request handling not warmed: %r", server, exc)
        return None
    _warmed(server, repeat)
    return server


def _warmed(server: str, repeat: int) -> None:
    log.debug(
        "pid %d: %s's request handling warmed on %d request(s) of postfork's own",
        os.getpid(),
        server,
        repeat,
    )


async def _answer(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The stand-in app: a JSON answer with a length, as most apps' answers are."""
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


async def _exchange(loop: asyncio.AbstractEventLoop, address: tuple[str, int]) -> bytes:
    """One request over a new loopback TCP connection to ``address``, read until the server
    closes it."""
    client = socket.socket()
    client.setblocking(False)
    with client:
        await loop.sock_connect(client, address)
        await loop.sock_sendall(client, REQUEST)
        answer = b""
        while chunk := await loop.sock_recv(client, 65536):
            answer += chunk
    return answer


def _asgi_protocol_factory(
    loop: asyncio.AbstractEventLoop,
) -> tuple[str, ProtocolFactory | None]:
    gunicorn_asgi = sys.modules.get("gunicorn.workers.gasgi")
    worker = gunicorn_server.serving_worker()
    if gunicorn_asgi is not None and isinstance(worker, gunicorn_asgi.ASGIWorker):
        return "gunicorn", _gunicorn_factory(worker, loop)
    uvicorn_protocol = _uvicorn_protocol(worker)
    if uvicorn_protocol is not None:
        return "uvicorn", _uvicorn_factory(uvicorn_protocol, loop)
    return "", None


def _uvicorn_protocol(gunicorn_worker: Any) -> type | None:
    """The HTTP protocol class uvicorn serves with: the one its configuration imported, or,
    in a ``UvicornWorker`` not serving yet (a warm-up from inside gunicorn's fork), the one
    its configuration names."""
    for module_name, class_name in _UVICORN_PROTOCOLS:
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, class_name):
            return getattr(module, class_name)  # type: ignore[no-any-return]
    uvicorn_config = sys.modules.get("uvicorn.config")
    config = getattr(gunicorn_worker, "config", None)
    if uvicorn_config is None or not isinstance(config, uvicorn_config.Config):
        return None
    if isinstance(config.http, type):
        return config.http
    from uvicorn.importer import import_from_string

    named = uvicorn_config.HTTP_PROTOCOLS.get(config.http, config.http)
    return import_from_string(named)  # type: ignore[no-any-return]


def _uvicorn_factory(protocol_class: type, loop: asyncio.AbstractEventLoop) -> ProtocolFactory:
    """uvicorn's protocol on a configuration and a server state of postfork's own: the
    server's request count (``--limit-max-requests``) never sees these requests."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    config = Config(_answer, http=protocol_class, ws="none", lifespan="off", log_config=None)
    config.load()
    state = ServerState()

    def protocol() -> asyncio.BaseProtocol:
        made: asyncio.BaseProtocol = protocol_class(
            config=config, server_state=state, app_state={}, _loop=loop
        )
        made.access_log = False  # type: ignore[attr-defined]
        return made

    return protocol


def _gunicorn_factory(worker: Any, loop: asyncio.AbstractEventLoop) -> ProtocolFactory:
    from gunicorn.asgi.protocol import ASGIProtocol

    # The protocol the worker builds for each connection it accepts, built once here on the
    # worker's own configuration and log and never connected: building it decides which request
    # hooks to call, and imports what that decision needs.
    ASGIProtocol(_Replaced(worker, asgi=_answer))
    stand_in = _GunicornASGIWorker(worker, loop)
    return lambda: ASGIProtocol(stand_in)


class _GunicornASGIWorker:
    """What gunicorn's ASGI protocol reads from its worker, for requests of postfork's own: the
    worker's configuration without its request hooks, its log without access lines, the
    stand-in app, a request count of its own (``max_requests`` never sees these)."""

    def __init__(self, worker: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.cfg = _Replaced(worker.cfg, pre_request=None, post_request=None)
        self.log = _Replaced(worker.log, access_log_enabled=False)
        self.asgi = _answer
        self.loop = loop
        self.state: dict[str, Any] = {}
        self.alive = True
        self.nr = 0
        self.nr_conns = 0
        self.max_requests = sys.maxsize


class _Replaced:
    """``target`` with some attributes replaced."""

    def __init__(self, target: Any, **replaced: Any) -> None:
        self._target = target
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)
