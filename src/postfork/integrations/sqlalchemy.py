"""SQLAlchemy on postfork's pool: ``create_engine(url, poolclass=PostforkPool, ...)``, and
the async engine on postfork's asyncio pool: ``create_async_engine(url,
poolclass=AsyncPostforkPool, ...)``.

Every guarantee of the pool holds for an engine: connections inherited across fork are
abandoned without a byte sent (also when SQLAlchemy or the garbage collector closes them in
the child), liveness is a zero-round-trip ``poll()`` instead of ``pool_pre_ping``, lifetimes
stay below the server's ``wait_timeout`` with jitter, the rollback on return is sent without
waiting for its reply, and ``postfork.install(engine)`` warms every worker before its first
request. SQLAlchemy keeps working as it does: its pool events fire, ``engine.dispose()``,
invalidation after a disconnect error, Core and the ORM ``Session``.

How it maps: each server session of the postfork pool carries one SQLAlchemy connection record
(in the session's ``info``), made when postfork opens the connection, so SQLAlchemy's
``connect`` events (the dialect's session set-up, your listeners) run once per session, during
the worker's warm-up, never on a request; a checkout is a postfork lease.

The async engine runs the same pool class in SQLAlchemy's greenlet: a checkout awaits the
:class:`~postfork.AsyncPool`'s lease (``await_``), and a new session's record, whose connect
events do I/O, is made in a greenlet of its own while the asyncio pool connects (its connect
listener returns an awaitable): in the app's lifespan, before the first request.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import pool as sa_pool
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool.base import _ConnectionRecord

try:  # SQLAlchemy 2.1
    from sqlalchemy.util.concurrency import await_, greenlet_spawn, in_greenlet
except ImportError:  # SQLAlchemy 2.0: await_ was await_only, and in_greenlet did not exist
    from greenlet import getcurrent  # type: ignore[import-untyped]
    from sqlalchemy.util._concurrency_py3k import _AsyncIoGreenlet  # type: ignore[import-not-found]
    from sqlalchemy.util.concurrency import await_only as await_
    from sqlalchemy.util.concurrency import greenlet_spawn

    def in_greenlet() -> bool:
        """Inside ``greenlet_spawn()``: where ``await_`` may be called."""
        return isinstance(getcurrent(), _AsyncIoGreenlet)


from ..errors import ConfigError, DatabaseUnavailable, MissingExtra, PoolTimeout
from ..install import Installation, installation_of
from ..install import install as install_pool
from ..pool import AsyncLease, AsyncPool, DiscardReason, Pool, Slot
from ..pool.options import DEFAULT_DEAD_PEER_TIMEOUT
from ..url import DatabaseURL, parse_url

log = logging.getLogger("postfork.sqlalchemy")

RECORD = "sqlalchemy.record"  # the key of a session's SQLAlchemy record in Slot.info
DRIVERS = {"mysqldb": "mysqlclient", "pymysql": "pymysql"}  # SQLAlchemy's name: postfork's
ASYNC_DRIVERS = {"asyncmy": "asyncmy", "aiomysql": "aiomysql"}
_SCHEMES = {
    "mysqlclient": "mysql+mysqldb",
    "pymysql": "mysql+pymysql",
    "asyncmy": "mysql+asyncmy",
    "aiomysql": "mysql+aiomysql",
}
_URL_KEYS = {  # SQLAlchemy's connect arguments that postfork's URL also knows (for messages)
    "host": "host",
    "port": "port",
    "user": "user",
    "passwd": "password",
    "password": "password",
    "db": "database",
    "database": "database",
}


class PoolTimeoutError(PoolTimeout, sa_exc.TimeoutError):
    """postfork's PoolTimeout that SQLAlchemy code catches as ``sqlalchemy.exc.TimeoutError``."""


class PostforkPool(sa_pool.Pool):
    """A SQLAlchemy pool class backed by :class:`postfork.Pool` (MySQL/MariaDB, mysqlclient or
    PyMySQL). QueuePool's arguments are understood: ``pool_size`` + ``max_overflow`` become
    ``max_size``, ``pool_timeout`` is ``checkout_timeout``, ``pool_recycle`` is
    ``max_lifetime``; ``pool_pre_ping`` is not needed (liveness costs no round trip) and is
    ignored. postfork's own options pass through ``create_engine`` by name."""

    _drivers = DRIVERS
    _postfork_class: type[Pool] | type[AsyncPool] = Pool
    _maker = "create_engine"

    def __init__(  # no "*": SQLAlchemy's create_engine passes only arguments it can see by name
        self,
        creator: Callable[..., Any],
        pool_size: int | None = None,
        max_overflow: int = 0,
        timeout: float | None = None,
        recycle: int = -1,
        use_lifo: bool = True,
        pre_ping: bool = False,
        min_idle: int = 1,
        max_size: int | None = None,
        checkout_timeout: float | None = None,
        connect_timeout: float | None = None,
        max_lifetime: float | None = None,
        lifetime_jitter: float = 0.1,
        leak_timeout: float | None = None,
        init_sql: Iterable[str] = (),
        dead_peer_timeout: float = DEFAULT_DEAD_PEER_TIMEOUT,
        dialect: Any = None,
        **base: Any,
    ) -> None:
        if pre_ping:
            log.info("pool_pre_ping ignored: postfork checks liveness without a round trip")
        super().__init__(creator, dialect=dialect, pre_ping=False, recycle=-1, **base)
        self._settings: dict[str, Any] = {
            "pool_size": pool_size,
            "max_overflow": max_overflow,
            "timeout": timeout,
            "recycle": recycle,
            "use_lifo": use_lifo,
            "min_idle": min_idle,
            "max_size": max_size,
            "checkout_timeout": checkout_timeout,
            "connect_timeout": connect_timeout,
            "max_lifetime": max_lifetime,
            "lifetime_jitter": lifetime_jitter,
            "leak_timeout": leak_timeout,
            "init_sql": tuple(init_sql),
            "dead_peer_timeout": dead_peer_timeout,
        }
        # recreate() passes the dispatch on itself: a recreated pool must not keep it twice
        self._base_args = {key: value for key, value in base.items() if key != "_dispatch"}
        self._sa_creator = creator
        url, driver, connect_args = _connection_settings(creator, dialect, self._drivers)
        self.postfork_pool = self._postfork_class(
            url,
            driver=driver,
            min_idle=min_idle,
            max_size=max_size or (pool_size or 4) + max_overflow,
            checkout_timeout=checkout_timeout or timeout or 5.0,
            connect_timeout=connect_timeout,
            max_lifetime=max_lifetime or (recycle if recycle > 0 else None),
            lifetime_jitter=lifetime_jitter,
            leak_timeout=leak_timeout,
            init_sql=init_sql,
            connect_args=connect_args,
            dead_peer_timeout=dead_peer_timeout,
        )
        self._adopting = threading.local()  # the connection postfork just opened, per thread
        self._creator = self._adopt  # SQLAlchemy's records get postfork's connections
        self.postfork_pool.events.listen("connect", self._record_new_session)
        self.postfork_pool.events.listen("discard", self._forget_session)

    # -- SQLAlchemy's pool interface -------------------------------------------------------

    def _do_get(self) -> Any:
        lease = self.postfork_pool.connection()
        try:
            self._enter(lease)
        except PoolTimeout as exc:
            raise PoolTimeoutError(str(exc), pool_repr=exc.pool_repr, **exc.facts()) from exc
        except DatabaseUnavailable as exc:
            if exc.__cause__ is not None:  # the driver's error: SQLAlchemy wraps it as usual
                raise exc.__cause__ from exc
            raise
        record = lease.info.get(RECORD)
        if record is None:  # opened before this pool listened (cannot happen): adopt it now
            record = self._make_record(lease.info, lease._slot.conn)  # type: ignore[union-attr]
        record._postfork_lease = lease
        return record

    def _do_return_conn(self, record: Any) -> None:
        lease = record.__dict__.pop("_postfork_lease", None)
        if lease is None:
            return  # detached, or returned twice
        if record.dbapi_connection is None or record._soft_invalidate_time > record.starttime:
            lease.invalidate()  # SQLAlchemy invalidated it: the session ends with it
        self._exit(lease)

    def _enter(self, lease: Any) -> None:
        lease.__enter__()

    def _exit(self, lease: Any) -> None:
        lease.__exit__(None, None, None)

    def _invalidate(self, connection: Any, exception: Any = None, _checkin: bool = True) -> None:
        """After a disconnect error SQLAlchemy would mark every older connection for a
        reconnect at its next checkout. postfork's checkout finds a dead one by itself, with
        no round trip, so only the connection that failed is invalidated."""
        if _checkin and getattr(connection, "is_valid", False):
            connection.invalidate(exception)

    def dispose(self) -> None:
        """Close this process's idle connections (never a connection inherited across fork)."""
        self.postfork_pool.close()

    def recreate(self) -> PostforkPool:
        self.logger.info("Pool recreating")
        new = self.__class__(
            self._sa_creator,
            dialect=self._dialect,
            _dispatch=self.dispatch,
            **self._settings,
            **self._base_args,
        )
        installation = installation_of(self.postfork_pool)
        if installation is not None:  # engine.dispose() keeps the engine installed
            install_pool(new, **installation.settings)
        return new

    def status(self) -> str:
        idle, in_use = self.postfork_pool.counts()
        size = self.postfork_pool.options.max_size
        return f"PostforkPool idle={idle} in_use={in_use} max_size={size}"

    # -- postfork's install(), in a master -------------------------------------------------

    def postfork_master_setup(self) -> None:
        """In a master, before it keeps no connection: one connection through SQLAlchemy, so
        the dialect's first-connect queries (version, sql_mode, isolation...) run once here
        and every worker inherits their answers instead of asking again."""
        connection = self.connect()
        connection.close()

    @staticmethod
    def postfork_prepare() -> None:
        """Once the app is complete (in a master before fork, or in a worker that loads the
        app, before it accepts): see :func:`configure_mappers_ahead`."""
        configure_mappers_ahead()

    # -- postfork's sessions and SQLAlchemy's records --------------------------------------

    def _adopt(self, connection_record: Any = None) -> Any:
        conn = getattr(self._adopting, "conn", None)
        if conn is None:
            raise ConfigError(
                "PostforkPool opens connections through postfork: a record asked for a new one "
                "outside postfork's connect (please report this)"
            )
        return conn

    def _record_new_session(self, pool: Pool, slot: Slot) -> Any:
        self._refuse_do_connect()
        self._make_record(slot.info, slot.connection)

    def _refuse_do_connect(self) -> None:
        dispatch = getattr(self._dialect, "dispatch", None)
        if dispatch is not None and dispatch.do_connect:  # checked per connect, not checkout
            raise ConfigError(
                f"{type(self).__name__} opens connections itself and does not run "
                f"DialectEvents.do_connect listeners; give connect_args= to {self._maker} instead"
            )

    def _make_record(self, info: dict[str, Any], conn: Any) -> Any:
        """SQLAlchemy's record for a new server session: its connect events run now."""
        self._adopting.conn = conn
        try:
            record = _ConnectionRecord(self)
        finally:
            self._adopting.conn = None
        info[RECORD] = record
        return record

    def _forget_session(self, pool: Pool, slot: Slot, reason: DiscardReason) -> None:
        record = slot.info.pop(RECORD, None)
        if record is None or reason is DiscardReason.FORK:
            return  # an inherited session belongs to the parent: no event here
        conn, record.dbapi_connection = record.dbapi_connection, None
        if conn is not None and self.dispatch.close:
            self.dispatch.close(conn, record)


def configure_mappers_ahead() -> None:
    """SQLAlchemy configures the ORM's mappers (relationships, their joins and loaders) at the
    first query, in every process that queries: in each new worker, on its first request
    (~20 ms for three mapped classes with relationships, profiled in a fresh fork). Done once
    the app's models are all defined, in a master it is inherited by every worker. Only when
    the app uses the ORM (``sqlalchemy.orm`` imported): nothing is imported for Core apps. A
    mapping error is logged here; the first query raises it as it would have."""
    orm = sys.modules.get("sqlalchemy.orm")
    if orm is None:
        return
    try:
        orm.configure_mappers()
    except Exception as exc:
        log.warning(
            "SQLAlchemy's mappers not configured ahead (the first query will say why): %s", exc
        )


def _connection_settings(
    creator: Callable[..., Any], dialect: Any, drivers: dict[str, str]
) -> tuple[DatabaseURL, str, dict[str, Any]]:
    """The engine's URL for postfork (messages, driver) and the connect arguments the dialect
    computed (mysqldb's FOUND_ROWS client flag, charset, TLS, your connect_args)."""
    if dialect is None or getattr(dialect, "name", "") not in ("mysql", "mariadb"):
        raise ConfigError(
            "postfork's pools serve MySQL and MariaDB engines (mysql+mysqldb://, "
            "mysql+pymysql://, mysql+asyncmy://, mysql+aiomysql://), not "
            f"{getattr(dialect, 'name', 'this dialect')!r}"
        )
    driver = drivers.get(dialect.driver)
    if driver is None:
        raise ConfigError(_wrong_pool_class(dialect.driver, drivers))
    captured = inspect.getclosurevars(creator).nonlocals
    positional = captured.get("cargs_tup", captured.get("cargs"))  # 2.1, 2.0
    if positional is None or "cparams" not in captured or positional:
        raise ConfigError(
            "PostforkPool opens its connections itself from the engine's URL: a custom "
            "creator= is not supported; give create_engine() connect_args= instead"
        )
    connect_args = dict(captured["cparams"])
    return _url_of(connect_args, driver), driver, connect_args


def _wrong_pool_class(driver: str, drivers: dict[str, str]) -> str:
    """What to use instead, for a driver this pool class does not serve."""
    if driver in ASYNC_DRIVERS:
        return (
            f"{driver} is an asyncio driver: make the engine with "
            "postfork.sqlalchemy.create_async_engine() (or sqlalchemy.ext.asyncio."
            "create_async_engine(..., poolclass=postfork.sqlalchemy.AsyncPostforkPool))"
        )
    if driver in DRIVERS:
        return (
            f"{driver} is not an asyncio driver: make the engine with "
            "postfork.sqlalchemy.create_engine() (poolclass=postfork.sqlalchemy.PostforkPool)"
        )
    known = ", ".join(f"mysql+{name}://" for name in drivers)
    return f"postfork's pool does not support the {driver!r} driver: use {known}"


def _url_of(connect_args: dict[str, Any], driver: str) -> DatabaseURL:
    fields: dict[str, Any] = {"driver": driver}
    for key, field in _URL_KEYS.items():
        if connect_args.get(key) not in (None, ""):
            fields[field] = connect_args[key]
    options = {
        key: connect_args[key]
        for key in ("unix_socket", "connect_timeout")
        if connect_args.get(key) not in (None, "")
    }
    connect_args.pop("connect_timeout", None)  # postfork bounds each connect itself
    if "port" in fields:
        fields["port"] = int(fields["port"])
    return DatabaseURL(**fields, options=options)


def engine_url(url: str | DatabaseURL, driver: str | None = None) -> URL:
    """A postfork database URL (``mysql://user:pw@host/db?unix_socket=...``) as SQLAlchemy's
    URL for the same database (``mysql+mysqldb://`` or ``mysql+pymysql://``)."""
    parsed = parse_url(url)
    driver = driver or parsed.driver or "mysqlclient"
    query = {k: str(v) for k, v in parsed.options.items() if k in _ENGINE_URL_OPTIONS}
    return URL.create(
        _SCHEMES[driver],
        username=parsed.user,
        password=parsed.password or None,
        host=None if parsed.unix_socket else parsed.host,
        port=None if parsed.unix_socket else parsed.port,
        database=parsed.database,
        query=query,
    )


_ENGINE_URL_OPTIONS = ("unix_socket", "charset", "connect_timeout", "read_timeout", "write_timeout")


def install(engine: Any, **options: Any) -> Installation:
    """``postfork.install()`` for an engine on :class:`PostforkPool`, or an async engine on
    :class:`AsyncPostforkPool` (the same options)."""
    pool = getattr(engine, "sync_engine", engine).pool  # an AsyncEngine runs a sync one
    if not isinstance(pool, PostforkPool):
        cls = AsyncPostforkPool if hasattr(engine, "sync_engine") else PostforkPool
        raise ConfigError(
            f"this engine uses {type(pool).__name__}, not postfork: create it with "
            f"postfork.sqlalchemy.{cls._maker}() (or poolclass=postfork.sqlalchemy.{cls.__name__})"
        )
    return install_pool(pool, **options)


_install_engine = install  # create_engine's ``install`` argument hides the function's name


def create_engine(url: Any, *, install: bool = True, **kwargs: Any) -> Engine:
    """``sqlalchemy.create_engine(url, poolclass=PostforkPool, **kwargs)``, installed (warm in
    every worker before its first request) unless ``install=False``."""
    import sqlalchemy

    if "poolclass" in kwargs and kwargs["poolclass"] is not PostforkPool:
        raise ConfigError("postfork.sqlalchemy.create_engine() sets poolclass itself")
    kwargs["poolclass"] = PostforkPool
    engine = sqlalchemy.create_engine(url, **kwargs)
    if install:
        _install_engine(engine)
    return engine


class AsyncPostforkPool(PostforkPool):
    """:class:`PostforkPool` for SQLAlchemy's async engine (``mysql+asyncmy://``,
    ``mysql+aiomysql://``), backed by :class:`postfork.AsyncPool`: the same arguments, the same
    guarantees. Warm it in the app's lifespan (``postfork.asgi``)."""

    _drivers = ASYNC_DRIVERS
    _postfork_class = AsyncPool
    _maker = "create_async_engine"

    def _enter(self, lease: Any) -> None:
        await_(lease.__aenter__())

    def _exit(self, lease: AsyncLease) -> None:
        if in_greenlet():
            await_(lease.__aexit__(None, None, None))
        else:  # collected outside any greenlet (never returned): discarded, not awaited
            lease.discard_now()

    def _record_new_session(self, pool: Pool, slot: Slot) -> Any:
        """The record's connect events do I/O through SQLAlchemy's adapted connection: they
        run in a greenlet of their own, awaited by the asyncio pool before it hands the
        connection out."""
        self._refuse_do_connect()
        dialect: Any = self._dialect
        adapted = self._adapted_class(dialect.loaded_dbapi, slot.connection)
        return greenlet_spawn(self._make_record, slot.info, adapted)

    @property
    def _adapted_class(self) -> Any:
        """SQLAlchemy's adapter of this driver's connections (``AsyncAdapt_*_connection``)."""
        dialect: Any = self._dialect
        module = importlib.import_module(type(dialect).__module__)
        return getattr(module, f"AsyncAdapt_{dialect.driver}_connection")

    def dispose(self) -> None:
        """Close this process's idle connections (in the engine's greenlet)."""
        pool = self.postfork_pool
        assert isinstance(pool, AsyncPool)
        await_(pool.close())

    def status(self) -> str:
        return "Async" + super().status()


def create_async_engine(url: Any, *, install: bool = True, **kwargs: Any) -> Any:
    """``sqlalchemy.ext.asyncio.create_async_engine(url, poolclass=AsyncPostforkPool,
    **kwargs)``, installed unless ``install=False``: in a forking server's master nothing is
    kept for the workers to inherit; each worker warms it in the app's lifespan
    (``postfork.asgi.lifespan(engine)``)."""
    try:
        from sqlalchemy.ext.asyncio import create_async_engine as create
    except ImportError as exc:  # SQLAlchemy 2.1 installs greenlet only with its asyncio extra
        if "greenlet" not in (exc.name, getattr(exc.__cause__, "name", None)):
            raise
        raise MissingExtra(
            "greenlet (SQLAlchemy's async engine runs on it)", "sqlalchemy-async"
        ) from exc
    if "poolclass" in kwargs and kwargs["poolclass"] is not AsyncPostforkPool:
        raise ConfigError("postfork.sqlalchemy.create_async_engine() sets poolclass itself")
    kwargs["poolclass"] = AsyncPostforkPool
    engine = create(url, **kwargs)
    if install:
        _install_engine(engine)
    return engine
