"""Fork-safety check: a parent with a warm pool forks children that leave in every way.

The pool can be postfork's own, or an ORM's on postfork (``--target sqlalchemy``); the controls
(``--target naive``, ``sqlalchemy-stock``) show what happens without postfork. The asyncio
targets (``async-pool``, ``async-sqlalchemy``; controls ``async-driver-pool``: the driver's own
``create_pool``, and ``async-sqlalchemy-stock``) keep the parent's pool bound to one event loop
that runs between the forks, as a master that preloaded and warmed an app would; each child runs
a loop of its own.

Runs as its own process (``python -m postfork.doctor.forkcheck``) so that children can exit the way
real workers do, through normal interpreter shutdown, with nothing of a test runner in their
stack. Prints one JSON report. ``postfork demo``, ``postfork doctor`` and the tests use it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, cast

from postfork import environment
from postfork.drivers import ASYNC_DRIVER_NAMES, DRIVER_NAMES, load_driver
from postfork.pool import AsyncPool, Pool
from postfork.topology import Cluster
from postfork.url import DatabaseURL, parse_url

EXIT_WAYS = ("exit", "use-and-exit", "raise", "os-exit", "gc-collect", "pool-close")
FORK_METHODS = ("os", "libc")


def _fork_function(method: str) -> Callable[[], int]:
    """``os.fork`` runs Python's at-fork hooks; libc's fork skips them, as uWSGI's C fork does."""
    if method == "os":
        return os.fork
    libc = ctypes.CDLL(None, use_errno=True)
    return lambda: int(libc.fork())


class PoolTarget:
    """The thing whose connections a parent holds while its children come and go."""

    name = "pool"

    def __init__(self, url: str, driver: str, size: int) -> None:
        self.size = size
        self.pool = Pool(url, driver=driver, min_idle=size, max_size=size)
        self.pool.warm()

    def connections(self) -> contextlib.AbstractContextManager[list[Any]]:
        """Every pooled connection leased at once (DB-API connections)."""
        return _leased_all([self.pool.connection() for _ in range(self.size)])

    def close(self) -> None:
        self.pool.close()

    def counts(self) -> dict[str, Any]:
        stats = self.pool.stats()
        return {"parent_connects": stats["connects"], "parent_discards": stats["discards"]}

    def session_ids(self) -> list[int]:
        """Lease every pooled connection at once and ask the server who each one is."""
        with self.connections() as conns:
            ids = []
            for conn in conns:
                cursor = conn.cursor()
                cursor.execute("SELECT CONNECTION_ID()")
                ids.append(int(cursor.fetchone()[0]))
                cursor.close()
        return sorted(ids)

    def use_once(self) -> None:
        """One query on one pooled connection (a child serving a request)."""
        with self.connections() as (conn, *_):
            cursor = conn.cursor()
            cursor.execute("SELECT CONNECTION_ID()")
            cursor.fetchall()


class EngineTarget(PoolTarget):
    """A SQLAlchemy engine on postfork's pool (installed); ``stock``: on its own QueuePool,
    each child following SQLAlchemy's documented recipe, ``engine.dispose(close=False)``."""

    def __init__(self, url: str, driver: str, size: int, *, stock: bool = False) -> None:
        import sqlalchemy

        from postfork.integrations.sqlalchemy import PostforkPool, engine_url, install

        self.size, self.stock = size, stock
        self.name = "sqlalchemy-stock" if stock else "sqlalchemy"
        options: dict[str, Any] = {"pool_size": size, "max_overflow": 0}
        if not stock:
            options.update(poolclass=PostforkPool, min_idle=size)
        self.engine = sqlalchemy.create_engine(engine_url(url, driver), **options)
        if not stock:
            install(self.engine)
            self.pool = cast(Any, self.engine.pool).postfork_pool

    def connections(self) -> contextlib.AbstractContextManager[list[Any]]:
        return _raw_connections([self.engine.raw_connection() for _ in range(self.size)])

    def after_fork(self) -> None:
        if self.stock:
            self.engine.dispose(close=False)  # SQLAlchemy's recipe for a forked child

    def close(self) -> None:
        self.engine.dispose()

    def counts(self) -> dict[str, Any]:
        return {} if self.stock else super().counts()


class DjangoTarget(PoolTarget):
    """Django's connections (persistent: the parent keeps them), one per database alias, on
    postfork's backend; ``stock``: Django's own MySQL backend."""

    def __init__(self, url: str, driver: str, size: int, *, stock: bool = False) -> None:
        self.size, self.stock = size, stock
        self.name = "django-stock" if stock else "django"
        self.aliases = tuple(f"db{index}" for index in range(size))
        _configure_django(parse_url(url), driver, self.aliases, stock=stock)
        from django.db import connections

        self._connections = connections
        for alias in self.aliases:
            connections[alias].ensure_connection()
        if not stock:
            self.pool = connections[self.aliases[0]].postfork_pool()

    @contextlib.contextmanager
    def connections(self) -> Iterator[list[Any]]:
        for alias in self.aliases:
            self._connections[alias].ensure_connection()
        yield [self._connections[alias].connection for alias in self.aliases]

    def close(self) -> None:
        self._connections.close_all()

    def counts(self) -> dict[str, Any]:
        if self.stock:
            return {}
        return _summed([self._connections[alias].postfork_pool() for alias in self.aliases])


def _configure_django(
    url: DatabaseURL, driver: str, aliases: tuple[str, ...], *, stock: bool
) -> None:
    import django
    from django.conf import settings

    if settings.configured:  # once per process: the control makes a fresh target per way
        return
    if driver == "pymysql":
        import pymysql

        pymysql.install_as_MySQLdb()
    database = {
        "ENGINE": "django.db.backends.mysql" if stock else "postfork.django",
        "NAME": url.database,
        "USER": url.user,
        "PASSWORD": url.password,
        "HOST": url.unix_socket or url.host,
        "PORT": "" if url.unix_socket else url.port,
        "CONN_MAX_AGE": None,
        "OPTIONS": {} if stock else {"pool": {"min_idle": 1, "max_size": 1}},
    }
    settings.configure(
        DATABASES={"default": database, **{alias: database for alias in aliases}},
        INSTALLED_APPS=[] if stock else ["postfork.django"],
        USE_TZ=True,
    )
    django.setup()


class ClusterTarget(PoolTarget):
    """A :class:`~postfork.Cluster`: a primary and replicas (``REPLICAS_VAR``), one connection
    per member; every member's sessions must survive the children."""

    name = "cluster"

    def __init__(self, url: str, driver: str, size: int) -> None:
        replicas = [u for u in os.environ.get(REPLICAS_VAR, "").split(",") if u]
        if not replicas:
            raise ValueError(f"--target cluster needs replica URLs in {REPLICAS_VAR}")
        self.cluster = Cluster(url, replicas, driver=driver, min_idle=1, max_size=1)
        self.cluster.warm()
        self.size = len(self.cluster.members)

    def connections(self) -> contextlib.AbstractContextManager[list[Any]]:
        return _leased_all([member.pool.connection() for member in self.cluster.members])

    def close(self) -> None:
        self.cluster.close()

    def counts(self) -> dict[str, Any]:
        return _summed(self.cluster.member_pools())


class AsyncPoolTarget(PoolTarget):
    """An :class:`~postfork.AsyncPool`, warm in the parent's loop (alive across the forks)."""

    name = "async-pool"
    pool: Any

    def __init__(self, url: str, driver: str, size: int) -> None:
        self.size = size
        self.loop = asyncio.new_event_loop()  # the parent's: each child makes its own
        self.pool = AsyncPool(url, driver=driver, min_idle=size, max_size=size)
        self.loop.run_until_complete(self.pool.open())

    def _in_loop(self, work: Callable[[], Any]) -> Any:
        """Run ``work()`` (a coroutine) in the parent's loop, or in a child's own."""
        if self.loop is not None and getattr(self, "_pid", os.getpid()) == os.getpid():
            return self.loop.run_until_complete(work())
        return asyncio.run(work())

    def session_ids(self) -> list[int]:
        return cast(list[int], self._in_loop(self._session_ids))

    async def _session_ids(self) -> list[int]:
        ids = []
        bound = float(os.environ.get(CHECK_VAR, CHECK_SECONDS))
        async with asyncio.timeout(bound), contextlib.AsyncExitStack() as leases:
            for _ in range(self.size):
                conn = await leases.enter_async_context(self._lease())
                ids.append(await _connection_id(conn))
        return sorted(ids)

    def _lease(self) -> contextlib.AbstractAsyncContextManager[Any]:
        lease: contextlib.AbstractAsyncContextManager[Any] = self.pool.connection()
        return lease

    def use_once(self) -> None:
        async def use() -> None:
            async with self._lease() as conn:
                await _connection_id(conn)

        self._in_loop(use)

    def close(self) -> None:
        self._in_loop(self._close)

    async def _close(self) -> None:
        await self.pool.close()

    def after_fork(self) -> None:
        self._pid = os.getpid()  # the parent's loop is not this process's: a child's own
        self.loop = None  # type: ignore[assignment]


async def _connection_id(conn: Any) -> int:
    async with conn.cursor() as cursor:
        await cursor.execute("SELECT CONNECTION_ID()")
        return int((await cursor.fetchone())[0])


class AsyncEngineTarget(AsyncPoolTarget):
    """SQLAlchemy's async engine on postfork's asyncio pool; ``stock``: on its own
    AsyncAdaptedQueuePool, the children knowing nothing of fork (no ``dispose(close=False)``:
    an app loaded by a preloading master, its engine used there)."""

    def __init__(self, url: str, driver: str, size: int, *, stock: bool = False) -> None:
        from postfork.integrations.sqlalchemy import create_async_engine, engine_url

        self.size, self.stock = size, stock
        self.name = "async-sqlalchemy-stock" if stock else "async-sqlalchemy"
        self.loop = asyncio.new_event_loop()
        address = engine_url(url, driver)
        if stock:
            from sqlalchemy.ext.asyncio import create_async_engine as stock_engine

            self.engine = stock_engine(address, pool_size=size, max_overflow=0)
        else:
            self.engine = create_async_engine(
                address, pool_size=size, max_overflow=0, min_idle=size
            )
            self.pool = cast(Any, self.engine.sync_engine.pool).postfork_pool
            self.loop.run_until_complete(self.pool.open())
        self.session_ids()  # stock: the engine's connections open on their first use

    @contextlib.asynccontextmanager
    async def _lease(self) -> AsyncIterator[Any]:
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            yield raw.driver_connection

    async def _close(self) -> None:
        await self.engine.dispose()

    def counts(self) -> dict[str, Any]:
        return {} if self.stock else super().counts()


class AsyncDriverPoolTarget(AsyncPoolTarget):
    """The control: the driver's own pool (``create_pool(minsize=3)``), what a careful asyncio
    user opens in a lifespan today."""

    name = "async-driver-pool"

    def __init__(self, url: str, driver: str, size: int) -> None:
        import importlib

        self.size = size
        self.loop = asyncio.new_event_loop()
        parsed = parse_url(url)
        module = importlib.import_module(driver)
        kwargs = {"user": parsed.user, "password": parsed.password, "autocommit": True}
        if parsed.unix_socket:
            kwargs["unix_socket"] = parsed.unix_socket
        else:
            kwargs.update(host=parsed.host, port=parsed.port)
        kwargs["db" if driver == "aiomysql" else "database"] = parsed.database
        self.driver_pool = self.loop.run_until_complete(
            module.create_pool(minsize=size, maxsize=size, **kwargs)
        )

    def _lease(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return cast(contextlib.AbstractAsyncContextManager[Any], self.driver_pool.acquire())

    async def _close(self) -> None:
        self.driver_pool.close()
        await self.driver_pool.wait_closed()

    def counts(self) -> dict[str, Any]:
        return {}


def _summed(pools: list[Pool]) -> dict[str, Any]:
    """The parent's connects and discards over several pools (one per alias or member)."""
    stats = [pool.stats() for pool in pools]
    return {
        "parent_connects": sum(each["connects"] for each in stats),
        "parent_discards": {
            reason: sum(each["discards"][reason] for each in stats)
            for reason in stats[0]["discards"]
        },
    }


REPLICAS_VAR = "POSTFORK_FORKCHECK_REPLICAS"  # comma-separated URLs, kept out of argv
TARGETS = ("pool", "sqlalchemy", "django", "cluster", "async-pool", "async-sqlalchemy")
CONTROLS = (
    "naive", "sqlalchemy-stock", "django-stock", "async-driver-pool", "async-sqlalchemy-stock"
)  # fmt: skip


def _target(name: str, url: str, driver: str, size: int) -> Any:
    if name == "pool":
        return PoolTarget(url, driver, size)
    if name in ("sqlalchemy", "sqlalchemy-stock"):
        return EngineTarget(url, driver, size, stock=name == "sqlalchemy-stock")
    if name in ("django", "django-stock"):
        return DjangoTarget(url, driver, size, stock=name == "django-stock")
    if name == "cluster":
        return ClusterTarget(url, driver, size)
    if name == "async-pool":
        return AsyncPoolTarget(url, driver, size)
    if name in ("async-sqlalchemy", "async-sqlalchemy-stock"):
        return AsyncEngineTarget(url, driver, size, stock=name.endswith("-stock"))
    if name == "async-driver-pool":
        return AsyncDriverPoolTarget(url, driver, size)
    raise ValueError(f"unknown target {name!r}")


@contextlib.contextmanager
def _leased_all(leases: list[Any]) -> Iterator[list[Any]]:
    conns = [lease.__enter__() for lease in leases]
    try:
        yield conns
    finally:
        for lease in reversed(leases):
            lease.__exit__(None, None, None)


@contextlib.contextmanager
def _raw_connections(conns: list[Any]) -> Iterator[list[Any]]:
    try:
        yield conns
    finally:
        for conn in reversed(conns):
            conn.close()


CHILD_SECONDS = 20  # a child that hangs (a control's, on its parent's loop) is killed by then
CHECK_SECONDS = 10.0  # the parent's sessions answer within this, or are counted broken
CHECK_VAR = "POSTFORK_FORKCHECK_CHECK_SECONDS"  # a shorter bound, for a control's test


def _child(holder: list[Any], way: str) -> None:
    """What a forked child does before it leaves; it never returns normally."""
    signal.alarm(CHILD_SECONDS)
    getattr(holder[0], "after_fork", lambda: None)()
    if way in ("use-and-exit", "raise", "os-exit"):
        holder[0].use_once()
        if way == "raise":
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)  # the uncaught traceback below is expected
            raise RuntimeError("child raised")
    if way == "os-exit":
        os._exit(0)
    if way == "gc-collect":
        holder.clear()  # the only reference: the pool and its connections become garbage
        gc.collect()
    if way == "pool-close":
        holder[0].close()
    sys.exit(0)  # normal interpreter shutdown: atexit, module teardown, GC of everything


def run_matrix(
    url: str, driver: str, method: str, ways: list[str], rounds: int, target: str = "pool"
) -> dict[str, Any]:
    size = 3
    holder = [_target(target, url, driver, size)]
    before = holder[0].session_ids()
    fork = _fork_function(method)
    exits: dict[str, list[int]] = {way: [] for way in ways}
    for way in ways:
        for _ in range(rounds):
            pid = fork()
            if pid == 0:
                _child(holder, way)
            _, status = os.waitpid(pid, 0)
            exits[way].append(os.waitstatus_to_exitcode(status))
    after = holder[0].session_ids()
    counts = holder[0].counts()
    holder[0].close()
    return {
        "target": target,
        "driver": driver,
        "fork": method,
        "children": rounds * len(ways),
        "exit_codes": exits,
        "sessions_before": before,
        "sessions_after": after,
        "sessions_unchanged": before == after,
        **counts,
    }


def run_control(url: str, driver: str, method: str, target: str) -> dict[str, Any]:
    """The unprotected control: one child per way, and after each, whether the parent's
    sessions still answer (a broken parent starts again with a fresh target)."""
    quiet = logging.getLogger("sqlalchemy")  # it logs the broken parent's failed resets
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    fork = _fork_function(method)
    survived: dict[str, bool | str] = {}
    for way in EXIT_WAYS:
        holder = [_target(target, url, driver, 3)]
        before = holder[0].session_ids()
        pid = fork()
        if pid == 0:
            _child(holder, way)
        os.waitpid(pid, 0)
        try:
            after = holder[0].session_ids()
            survived[way] = True if after == before else f"sessions replaced: {after}"
        except Exception as exc:
            survived[way] = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):
            holder[0].close()
    return {"target": target, "driver": driver, "fork": method, "survived": survived}


def run_naive(url: str, driver: str, method: str) -> dict[str, Any]:
    """The bug postfork prevents: a raw connection, a child that just closes or drops it."""
    adapter = load_driver(driver)
    conn = adapter.connect(parse_url(url), connect_timeout=5, autocommit=False)
    cursor = conn.cursor()
    cursor.execute("SELECT CONNECTION_ID()")
    pid = _fork_function(method)()
    if pid == 0:
        if driver == "pymysql":
            conn.close()  # PyMySQL sends COM_QUIT on close(), not on garbage collection
        sys.exit(0)  # mysqlclient sends COM_QUIT when the object is collected at shutdown
    os.waitpid(pid, 0)
    try:
        cursor.execute("SELECT 1")
        cursor.fetchall()
        error = None
    except adapter.module.Error as exc:
        error = f"{type(exc).__name__}: {exc}"
    return {"driver": driver, "fork": method, "parent_survived": error is None, "error": error}


def run_in_subprocess(
    url: DatabaseURL,
    *args: str,
    replicas: Sequence[DatabaseURL] = (),
    check_seconds: float | None = None,
) -> dict[str, Any]:
    """Run this module as its own process and return its report (passwords stay out of argv)."""
    env = {**os.environ, environment.DATABASE_URL_VAR: url.render_secret()}
    if check_seconds is not None:
        env[CHECK_VAR] = str(check_seconds)
    if replicas:
        env[REPLICAS_VAR] = ",".join(replica.render_secret() for replica in replicas)
    result = subprocess.run(
        [sys.executable, "-m", "postfork.doctor.forkcheck", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"fork check failed: {result.stderr.strip()[-500:]}")
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m postfork.doctor.forkcheck")
    parser.add_argument("--url", help="database URL (default: $DATABASE_URL, kept out of argv)")
    parser.add_argument(
        "--driver", choices=DRIVER_NAMES + ASYNC_DRIVER_NAMES, default="mysqlclient"
    )
    parser.add_argument("--fork", choices=FORK_METHODS, default="os")
    parser.add_argument("--ways", default=",".join(EXIT_WAYS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", choices=TARGETS + CONTROLS, default="pool")
    parser.add_argument("--naive", action="store_true", help="run the unprotected baseline")
    args = parser.parse_args(argv)
    args.url = args.url or environment.database_url()
    if not args.url:
        parser.error("no database URL: pass --url or set DATABASE_URL")
    if args.naive or args.target == "naive":
        report = run_naive(args.url, args.driver, args.fork)
    elif args.target in CONTROLS:
        report = run_control(args.url, args.driver, args.fork, args.target)
    else:
        ways = [way for way in args.ways.split(",") if way]
        report = run_matrix(args.url, args.driver, args.fork, ways, args.rounds, args.target)
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
