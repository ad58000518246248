"""postfork.asgi without a server: the lifespan (warm at start-up, never failing it, composed
with the app's own, a warm-up request, pools closed at shutdown) and the timing and profiling
middleware, around small ASGI apps on an AsyncPool (fake driver)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from postfork import AsyncPool, ConfigError, DatabaseUnavailable, server_warmup
from postfork.asgi import (
    WARMUP_SCOPE_KEY,
    LifespanMiddleware,
    ProfileSettings,
    ProfilingMiddleware,
    TimingMiddleware,
    lifespan,
)
from postfork.servers import gunicorn as gunicorn_server
from postfork.warmup import REPEAT

from .fakes import FakeAsyncDriver, FakeOperationalError

URL = "mysql://app:secret@db.internal:3306/shop"
T = TypeVar("T")
Message = dict[str, Any]


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())  # type: ignore[arg-type]


def make_pool(driver: FakeAsyncDriver | None = None, **options: Any) -> AsyncPool:
    options.setdefault("min_idle", 1)
    return AsyncPool(URL, driver=driver or FakeAsyncDriver(), **options)


def db_app(pool: AsyncPool, seen: list[dict[str, Any]] | None = None) -> Any:
    """An ASGI app whose every HTTP request leases a connection; it records each scope."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise ValueError("this app has no lifespan (as Django's handler)")
        if seen is not None:
            seen.append(scope)
        async with pool.connection():
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def request(app: Any, path: str = "/x", query: bytes = b"") -> tuple[int, dict[str, str]]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": query, "headers": []}
    await app(scope, receive, send)
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start.get("headers", [])}


class Server:
    """The lifespan protocol as a server speaks it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.to_app: asyncio.Queue[Message] = asyncio.Queue()
        self.from_app: asyncio.Queue[Message] = asyncio.Queue()
        self.state: dict[str, Any] = {}
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> str:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self.task = asyncio.create_task(self.app(scope, self.to_app.get, self.from_app.put))
        await self.to_app.put({"type": "lifespan.startup"})
        return str((await self.from_app.get())["type"])

    async def shutdown(self) -> str:
        await self.to_app.put({"type": "lifespan.shutdown"})
        answer = str((await self.from_app.get())["type"])
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)
        return answer


# -- the lifespan -----------------------------------------------------------------------------


def test_a_worker_is_warm_before_it_answers_start_up_and_closes_its_pool_at_shutdown() -> None:
    async def scenario() -> None:
        driver = FakeAsyncDriver()
        pool = make_pool(driver, min_idle=2, max_size=2)
        server = Server(LifespanMiddleware(db_app(pool), pool))
        assert await server.startup() == "lifespan.startup.complete"
        assert pool.stats()["idle"] == 2  # before the first request
        status, _ = await request(server.app)
        assert status == 200 and pool.stats()["connects"] == 2
        assert await server.shutdown() == "lifespan.shutdown.complete"
        assert pool.closed and all(conn.closed for conn in driver.opened)

    run(scenario)


def test_a_database_down_at_start_up_never_fails_the_start_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A start-up that fails stops uvicorn 0.50+ altogether: the worker starts instead,
    reports not ready and answers 503 (the app's handler) until the database is back."""

    async def scenario() -> None:
        driver = FakeAsyncDriver()
        driver.fail_next_connects.extend([FakeOperationalError(2003, "refused")] * 100)
        pool = make_pool(driver)
        middleware = LifespanMiddleware(db_app(pool), pool)
        server = Server(middleware)
        with caplog.at_level(logging.WARNING, logger="postfork.install"):
            assert await server.startup() == "lifespan.startup.complete"
        assert "pool not warm, serving 503 until the database answers" in caplog.text
        assert not await middleware.postfork.ready()
        with pytest.raises(DatabaseUnavailable):
            await request(middleware)
        driver.fail_next_connects.clear()  # the database is back
        assert await middleware.postfork.ready()
        status, _ = await request(middleware)
        assert status == 200
        assert await server.shutdown() == "lifespan.shutdown.complete"

    run(scenario)


def test_the_apps_own_lifespan_runs_inside_with_the_pool_warm() -> None:
    async def scenario() -> None:
        pool = make_pool()
        events: list[str] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            assert scope["type"] == "lifespan"
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    events.append(f"app start-up, pool idle={pool.stats()['idle']}")
                    scope["state"]["made_by_app"] = True
                    await send({"type": "lifespan.startup.complete"})
                else:
                    events.append(f"app shutdown, pool closed={pool.closed}")
                    await send({"type": "lifespan.shutdown.complete"})
                    return

        server = Server(LifespanMiddleware(app, pool))
        assert await server.startup() == "lifespan.startup.complete"
        assert await server.shutdown() == "lifespan.shutdown.complete"
        assert events == ["app start-up, pool idle=1", "app shutdown, pool closed=False"]
        assert pool.closed and server.state == {"made_by_app": True}

    run(scenario)


def test_an_app_whose_own_start_up_fails_fails_the_start_up_and_closes_the_pool() -> None:
    async def scenario() -> None:
        pool = make_pool()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no config"})

        server = Server(LifespanMiddleware(app, pool))
        assert await server.startup() == "lifespan.startup.failed"
        assert pool.closed

    run(scenario)


def test_the_warm_up_request_goes_through_the_app_with_the_lifespan_state() -> None:
    async def scenario() -> None:
        pool = make_pool()
        seen: list[dict[str, Any]] = []
        inner = db_app(pool, seen)
        server = Server(LifespanMiddleware(inner, pool, warmup_path="/healthz?deep=1"))
        server.state["token"] = "from the lifespan"
        assert await server.startup() == "lifespan.startup.complete"
        assert len(seen) == REPEAT  # the interpreter warms over a few runs: see REPEAT
        for scope in seen:
            assert (scope["path"], scope["query_string"]) == ("/healthz", b"deep=1")
            assert scope[WARMUP_SCOPE_KEY] and scope["state"] == {"token": "from the lifespan"}
        await server.shutdown()
        seen.clear()
        once = Server(LifespanMiddleware(inner, pool, warmup_path="/healthz", warmup_repeat=1))
        assert await once.startup() == "lifespan.startup.complete"
        assert len(seen) == 1
        await once.shutdown()

    run(scenario)


def test_the_starlette_style_lifespan_composes_with_the_apps_own() -> None:
    async def scenario() -> None:
        pool = make_pool()
        order: list[str] = []

        @contextlib.asynccontextmanager
        async def app_lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
            order.append(f"app in, pool idle={pool.stats()['idle']}")
            yield {"answer": 42}
            order.append(f"app out, pool closed={pool.closed}")

        run_lifespan = lifespan(pool, app_lifespan=app_lifespan)
        async with run_lifespan(object()) as state:
            assert state == {"answer": 42}
        assert order == ["app in, pool idle=1", "app out, pool closed=False"]
        assert pool.closed

    run(scenario)


def test_wrong_targets_and_paths_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"postfork\.AsyncPool or an async engine"):
        lifespan(object())
    with pytest.raises(ConfigError, match="starting with '/'"):
        lifespan(make_pool(), warmup_path="healthz")
    with pytest.raises(ConfigError, match="at least one"):
        lifespan()


# -- timing and profiling ------------------------------------------------------------------------


def test_server_timing_and_the_worker_header_on_every_http_response() -> None:
    async def scenario() -> None:
        pool = make_pool(min_idle=0)
        app = TimingMiddleware(db_app(pool), access_log_format="off")
        _, first = await request(app)
        _, second = await request(app)
        timings = [
            dict(item.split(";dur=") for item in headers["server-timing"].split(", "))
            for headers in (first, second)
        ]
        assert float(timings[0]["db-connect"]) > 0 and float(timings[1]["db-connect"]) == 0
        assert float(timings[1]["db"]) >= 0 and list(timings[1]) == [
            "db-connect", "pool-wait", "db", "app"
        ]  # fmt: skip
        assert first["x-worker"] == f"{os.getpid()}/1" and second["x-worker"] == f"{os.getpid()}/2"

    run(scenario)


def test_the_access_line_and_observers_hear_each_request_but_not_the_warm_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        pool = make_pool()
        app = TimingMiddleware(db_app(pool), access_log_format="json")
        heard: list[tuple[str, int]] = []
        app.observers.append(lambda req, timing, status, s: heard.append((req.path, status)))
        caplog.set_level(logging.INFO, logger="postfork.access")
        await request(app, "/v1/a b", b"x=1")
        line = json.loads(caplog.records[-1].getMessage())
        assert (line["path"], line["status"], line["request"]) == ("/v1/a b?x=1", 200, 1)

        async def ignore(message: Message) -> None:
            pass

        warmup = {"type": "http", "method": "GET", "path": "/w", WARMUP_SCOPE_KEY: True}
        await app(warmup, lambda: asyncio.sleep(0, {"type": "http.request"}), ignore)
        assert heard == [("/v1/a b", 200)] and app.requests.in_this_process()[0] == 1

    run(scenario)


def test_profiling_logs_the_sampled_requests(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        pool = make_pool()
        app = ProfilingMiddleware(db_app(pool), ProfileSettings.parse("first=1,top=5"))
        caplog.set_level(logging.INFO, logger="postfork.profile")
        await request(app, "/first")
        await request(app, "/second")
        profiles = [r.getMessage() for r in caplog.records if r.name == "postfork.profile"]
        assert len(profiles) == 1 and "request=1 method=GET path=/first status=200" in profiles[0]
        assert "function calls" in profiles[0]

    run(scenario)


class _ClosesAtOnce(asyncio.Protocol):
    """A server whose internals are not what postfork knows: it answers nothing."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def test_the_servers_request_handling_is_warmed_on_requests_of_postforks_own() -> None:
    """uvicorn's HTTP protocol, as its configuration imports it, serves the stand-in app over
    loopback; the server's name says it did."""
    import uvicorn.protocols.http.h11_impl  # noqa: F401

    assert run(lambda: server_warmup.warm_asgi_server(REPEAT)) == "uvicorn"


def test_gunicorns_asgi_worker_is_warmed_with_its_configuration_but_not_its_hooks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    # gunicorn's own ASGI worker is new in gunicorn 24; the lows (gunicorn 22) have none
    asgi_worker = pytest.importorskip("gunicorn.workers.gasgi").ASGIWorker

    called: list[str] = []
    cfg = Config()
    cfg.set("post_request", lambda worker, req, environ, resp: called.append("post_request"))
    cfg.set("pre_request", lambda worker, req: called.append("pre_request"))
    cfg.set("accesslog", "-")
    worker = asgi_worker.__new__(asgi_worker)  # as post_fork sees it: made in the arbiter
    worker.cfg, worker.log = cfg, Logger(cfg)
    monkeypatch.setattr(gunicorn_server, "_worker", worker)
    assert run(lambda: server_warmup.warm_asgi_server(REPEAT)) == "gunicorn"
    assert called == []  # the user's request hooks never see postfork's requests
    assert "postfork-warmup" not in "".join(capsys.readouterr())  # nor its access log


GUNICORN_FIRST_CONNECTION = r"""
import asyncio, sys
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.workers.gasgi import ASGIWorker
from gunicorn.asgi.protocol import ASGIProtocol
from postfork import server_warmup
from postfork.servers import gunicorn as gunicorn_server

worker = ASGIWorker.__new__(ASGIWorker)  # as post_fork sees it: made in the arbiter
worker.cfg, worker.asgi = Config(), None
worker.log = Logger(worker.cfg)
gunicorn_server._worker = worker
assert asyncio.run(server_warmup.warm_asgi_server()) == "gunicorn"
before = set(sys.modules)
ASGIProtocol(worker)  # what the worker builds for its first real connection
print(sorted(set(sys.modules) - before))
"""


def test_gunicorns_first_real_connection_has_nothing_left_to_import() -> None:
    """The warm-up's stand-in worker must not leave the real worker's first connection to
    import what the real configuration's request hooks need (a fresh interpreter: nothing
    imported by other tests)."""
    pytest.importorskip("gunicorn.workers.gasgi")
    out = subprocess.run(
        [sys.executable, "-c", GUNICORN_FIRST_CONNECTION],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_a_server_warm_up_that_fails_leaves_the_worker_to_serve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        server_warmup, "_asgi_protocol_factory", lambda loop: ("uvicorn", _ClosesAtOnce)
    )
    assert run(lambda: server_warmup.warm_asgi_server(REPEAT)) is None
