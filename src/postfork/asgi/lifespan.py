"""Warm before the first request under ASGI: postfork in the app's lifespan.

An ASGI server runs the app's lifespan start-up in each worker, in the worker's event loop,
and accepts nothing until it completes: the one moment an :class:`~postfork.AsyncPool` can
open its connections before a request arrives (a forking server's ``post_fork`` comes before
any loop exists; uvicorn and hypercorn spawn their workers, which import the app afresh).

:class:`LifespanMiddleware` wraps any ASGI app and answers the lifespan protocol: at start-up
each pool warms (its connections open, its refill task started, the warm line logged), then
the app's own lifespan runs, then one optional warm-up request goes through the app; at
shutdown the app's lifespan ends first, then the pools close (COM_QUIT on every connection:
the server counts none aborted). A database that does not answer never fails the start-up: a
start-up that fails stops uvicorn 0.50+ altogether (exit code 3) instead of respawning; the
worker starts, reports not ready and answers 503 until the database is back. An app without a
lifespan of its own (Django's handler refuses the protocol) is served all the same.

:func:`lifespan` is the same for Starlette and FastAPI's ``lifespan=`` argument.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import ConfigError
from ..install import Installation, WarmListener, install, installation_of
from ..pool import AsyncPool
from ..server_warmup import warm_asgi_server
from ..topology.window import request_ended
from ..warmup import REPEAT, asgi_get, checked_path, checked_repeat, failed
from .types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("postfork.asgi")

DEFAULT_WARMUP_TIMEOUT = 10.0


class PostforkStartup:
    """What postfork does at an app's start-up and shutdown, for its pools."""

    def __init__(
        self,
        targets: tuple[Any, ...],
        *,
        warmup_path: str | None = None,
        warmup_timeout: float = DEFAULT_WARMUP_TIMEOUT,
        warmup_repeat: int = REPEAT,
        on_warm: WarmListener | None = None,
    ) -> None:
        if not targets:
            raise ConfigError("postfork.asgi needs at least one AsyncPool (or async engine)")
        if warmup_path is not None:
            checked_path(warmup_path)
        self.targets = targets
        self.on_warm = on_warm
        # at import: in a forking server's master this is its share (driver ready, no
        # connection kept); in a worker, the pools are registered for the start-up
        for target in targets:
            self._installed(target)
        self.warmup_path = warmup_path
        self.warmup_timeout = warmup_timeout
        self.warmup_repeat = checked_repeat(warmup_repeat)

    @property
    def installations(self) -> list[Installation]:
        """Asked anew each time: an engine's pool may have been recreated (``dispose()``)."""
        return [self._installed(target) for target in self.targets]

    def _installed(self, target: Any) -> Installation:
        installation = installation_of(_async_pool(target)) or install(target)
        if self.on_warm is not None and self.on_warm not in installation.on_warm:
            installation.on_warm.append(self.on_warm)
        return installation

    @property
    def pools(self) -> list[AsyncPool]:
        return [_async_pool(target) for target in self.targets]

    async def start(self) -> None:
        """Every pool warm (or reporting why not); never raises."""
        for installation in self.installations:
            await installation.warm_async()

    async def ready(self) -> bool:
        """For a readiness probe: every pool holds its connections now, or can open them."""
        ready = [await installation.ready_async() for installation in self.installations]
        return all(ready)

    async def warm_request(self, app: ASGIApp, state: dict[str, Any] | None = None) -> None:
        """GET ``warmup_path`` through the app, ``warmup_repeat`` times, bounded; what it costs
        (imports, caches, the first statement of each kind, the interpreter's specialization)
        is then paid before the server accepts. ``state``: what the app's lifespan made, as a
        request's ``scope["state"]`` carries it. Then the server's own request handling, on
        requests of its own (:mod:`postfork.server_warmup`)."""
        if self.warmup_path is not None:
            await self._warm_app(app, self.warmup_path, state)
        await warm_asgi_server(self.warmup_repeat)

    async def _warm_app(self, app: ASGIApp, path: str, state: dict[str, Any] | None) -> None:
        try:
            async with asyncio.timeout(self.warmup_timeout):
                for _ in range(self.warmup_repeat):
                    status = await asgi_get(app, path, state=state)
                    if failed(status):
                        break
        except TimeoutError:
            log.warning(
                "warm-up request GET %s took over %gs: cut off; serving anyway",
                path,
                self.warmup_timeout,
            )
        except Exception as exc:
            log.warning("warm-up request GET %s failed (serving anyway): %r", path, exc)
        else:
            if failed(status):
                log.warning("warm-up request GET %s answered %d", path, status)

    async def stop(self) -> None:
        for pool in self.pools:
            try:
                await pool.close()
            except Exception as exc:
                log.warning("closing %r at shutdown failed: %r", pool, exc)


def _async_pool(target: Any) -> AsyncPool:
    """The AsyncPool of ``target`` (itself, or an async engine's), or a clear error."""
    if isinstance(target, AsyncPool):
        return target
    engine = getattr(target, "sync_engine", target)  # SQLAlchemy's AsyncEngine
    pool = getattr(getattr(engine, "pool", None), "postfork_pool", None)
    if isinstance(pool, AsyncPool):
        return pool
    raise ConfigError(
        f"postfork.asgi takes postfork.AsyncPool or an async engine made by "
        f"postfork.sqlalchemy.create_async_engine, not {type(target).__name__}"
    )


class LifespanMiddleware:
    """Any ASGI app with postfork's pools warm in each worker before its first request:
    ``app = LifespanMiddleware(app, pool, warmup_path="/healthz")``. Each request starts with
    no read-your-writes window open (gunicorn's ASGI worker may run one connection's requests
    in one task)."""

    def __init__(
        self,
        app: ASGIApp,
        *targets: Any,
        warmup_path: str | None = None,
        warmup_timeout: float = DEFAULT_WARMUP_TIMEOUT,
        warmup_repeat: int = REPEAT,
        on_warm: WarmListener | None = None,
    ) -> None:
        self.app = app
        self.postfork = PostforkStartup(
            targets,
            warmup_path=warmup_path,
            warmup_timeout=warmup_timeout,
            warmup_repeat=warmup_repeat,
            on_warm=on_warm,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            request_ended()  # a kept-alive connection's task may have served another request
            await self.app(scope, receive, send)
            return
        await self._lifespan(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        await self.postfork.start()
        inner = _AppLifespan(self.app, scope)
        failed = await inner.start()
        if failed is not None:
            await self.postfork.stop()
            await send({"type": "lifespan.startup.failed", "message": failed})
            return
        await self.postfork.warm_request(self.app, scope.get("state"))
        await send({"type": "lifespan.startup.complete"})
        message = await receive()  # lifespan.shutdown
        failed = await inner.stop()
        await self.postfork.stop()
        if failed is not None:
            await send({"type": "lifespan.shutdown.failed", "message": failed})
            return
        await send({"type": "lifespan.shutdown.complete"})


class _AppLifespan:
    """The wrapped app's own lifespan, run as a task beside ours: what the server sends is
    relayed to it, what it answers is read here. An app that refuses the lifespan scope
    (raises before answering) has none, and is served all the same."""

    def __init__(self, app: ASGIApp, scope: Scope) -> None:
        self._app, self._scope = app, scope
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._supported = True

    async def start(self) -> str | None:
        """None once the app's start-up completed (or it has no lifespan), else its message."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._to_app.put({"type": "lifespan.startup"})
        return await self._answer("lifespan.startup")

    async def stop(self) -> str | None:
        if not self._supported or self._task is None:
            return None
        await self._to_app.put({"type": "lifespan.shutdown"})
        failed = await self._answer("lifespan.shutdown")
        await asyncio.wait((self._task,), timeout=1.0)
        return failed

    async def _run(self) -> None:
        try:
            await self._app(self._scope, self._to_app.get, self._from_app.put)
        except BaseException as exc:
            await self._from_app.put({"type": "postfork.app_raised", "error": exc})
            if not isinstance(exc, Exception):
                raise
        else:
            await self._from_app.put({"type": "postfork.app_returned"})

    async def _answer(self, stage: str) -> str | None:
        message = await self._from_app.get()
        kind = message["type"]
        if kind == f"{stage}.complete":
            return None
        if kind == f"{stage}.failed":
            return str(message.get("message", ""))
        if stage == "lifespan.startup":  # it returned or raised without answering: no lifespan
            self._supported = False
            error = message.get("error")
            log.debug("the app has no lifespan of its own (%r): postfork's alone", error)
            return None
        error = message.get("error")
        return f"the app's lifespan ended at shutdown without answering: {error!r}"


def lifespan(
    *targets: Any,
    app_lifespan: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]] | None = None,
    warmup_path: str | None = None,
    warmup_timeout: float = DEFAULT_WARMUP_TIMEOUT,
    warmup_repeat: int = REPEAT,
    on_warm: WarmListener | None = None,
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]:
    """For Starlette and FastAPI's ``lifespan=``: ``FastAPI(lifespan=lifespan(pool))``. The
    app's own lifespan, if any, is ``app_lifespan`` (it runs inside, with the pools warm; its
    state is the app's state). ``warmup_path``: a GET through the app before it serves,
    ``warmup_repeat`` times (3: see ``postfork.warmup.REPEAT``); ``on_warm``: receives each
    worker's :class:`~postfork.WarmReport` (as ``install()``'s)."""
    postfork = PostforkStartup(
        targets,
        warmup_path=warmup_path,
        warmup_timeout=warmup_timeout,
        warmup_repeat=warmup_repeat,
        on_warm=on_warm,
    )

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[Any]:
        await postfork.start()
        try:
            if app_lifespan is None:
                await postfork.warm_request(app)
                yield None
            else:
                async with app_lifespan(app) as state:
                    await postfork.warm_request(app, state)
                    yield state
        finally:
            await postfork.stop()

    run.postfork = postfork  # type: ignore[attr-defined]
    return run
