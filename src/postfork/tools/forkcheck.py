"""Fork-safety check: a parent with a warm pool forks children that leave in every way.

The pool can be postfork's own, or an ORM's on postfork (``--target sqlalchemy``); the controls
(``--target naive``, ``sqlalchemy-stock``) show what happens without postfork.

Runs as its own process (``python -m postfork.tools.forkcheck``) so that children can exit the way
real workers do, through normal interpreter shutdown, with nothing of a test runner in their
stack. Prints one JSON report. ``postfork demo``, ``postfork doctor`` and the tests use it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

from .. import environment
from ..drivers import DRIVER_NAMES, load_driver
from ..pool import Pool
from ..topology import Cluster
from ..url import DatabaseURL, parse_url

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


class EngineTarget(PoolTarget):
    """A SQLAlchemy engine on postfork's pool (installed); ``stock``: on its own QueuePool,
    each child following SQLAlchemy's documented recipe, ``engine.dispose(close=False)``."""

    def __init__(self, url: str, driver: str, size: int, *, stock: bool = False) -> None:
        import sqlalchemy

        from ..integrations.sqlalchemy import PostforkPool, engine_url, install

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
TARGETS = ("pool", "sqlalchemy", "django", "cluster")
CONTROLS = ("naive", "sqlalchemy-stock", "django-stock")


def _target(name: str, url: str, driver: str, size: int) -> Any:
    if name == "pool":
        return PoolTarget(url, driver, size)
    if name in ("sqlalchemy", "sqlalchemy-stock"):
        return EngineTarget(url, driver, size, stock=name == "sqlalchemy-stock")
    if name in ("django", "django-stock"):
        return DjangoTarget(url, driver, size, stock=name == "django-stock")
    if name == "cluster":
        return ClusterTarget(url, driver, size)
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


def _child(holder: list[Any], way: str) -> None:
    """What a forked child does before it leaves; it never returns normally."""
    getattr(holder[0], "after_fork", lambda: None)()
    if way in ("use-and-exit", "raise", "os-exit"):
        with holder[0].connections() as (conn, *_):
            cursor = conn.cursor()
            cursor.execute("SELECT CONNECTION_ID()")
            cursor.fetchall()
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


def _parent_sessions(target: Any) -> list[int]:
    """Lease every pooled connection at once and ask the server who each one is."""
    with target.connections() as conns:
        ids = []
        for conn in conns:
            cursor = conn.cursor()
            cursor.execute("SELECT CONNECTION_ID()")
            ids.append(int(cursor.fetchone()[0]))
            cursor.close()
    return sorted(ids)


def run_matrix(
    url: str, driver: str, method: str, ways: list[str], rounds: int, target: str = "pool"
) -> dict[str, Any]:
    size = 3
    holder = [_target(target, url, driver, size)]
    before = _parent_sessions(holder[0])
    fork = _fork_function(method)
    exits: dict[str, list[int]] = {way: [] for way in ways}
    for way in ways:
        for _ in range(rounds):
            pid = fork()
            if pid == 0:
                _child(holder, way)
            _, status = os.waitpid(pid, 0)
            exits[way].append(os.waitstatus_to_exitcode(status))
    after = _parent_sessions(holder[0])
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
        before = _parent_sessions(holder[0])
        pid = fork()
        if pid == 0:
            _child(holder, way)
        os.waitpid(pid, 0)
        try:
            after = _parent_sessions(holder[0])
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
    url: DatabaseURL, *args: str, replicas: Sequence[DatabaseURL] = ()
) -> dict[str, Any]:
    """Run this module as its own process and return its report (passwords stay out of argv)."""
    env = {**os.environ, environment.DATABASE_URL_VAR: url.render_secret()}
    if replicas:
        env[REPLICAS_VAR] = ",".join(replica.render_secret() for replica in replicas)
    result = subprocess.run(
        [sys.executable, "-m", "postfork.tools.forkcheck", *args],
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
    parser = argparse.ArgumentParser(prog="python -m postfork.tools.forkcheck")
    parser.add_argument("--url", help="database URL (default: $DATABASE_URL, kept out of argv)")
    parser.add_argument("--driver", choices=DRIVER_NAMES, default="mysqlclient")
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
