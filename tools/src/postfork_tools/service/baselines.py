"""The service's baselines: SQLAlchemy's ``QueuePool`` with ``pool_pre_ping`` (``sqlalchemy``
mode); for the ASGI twin, SQLAlchemy's async pool and the driver's own (below).

The common alternative to postfork, configured the way its documentation suggests for MySQL
behind a pre-fork server: the engine is created when the app loads (in the uWSGI master when
apps are preloaded; it opens nothing there), each worker connects on its first request, every
checkout pings the server (one round trip) and every return rolls back (another). The service
runs on it unchanged: it offers the slice of :class:`postfork.Pool`'s interface the service uses.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from postfork.drivers import connect, load_async_driver, load_driver
from postfork.errors import DatabaseUnavailable, MissingExtra, PoolTimeout
from postfork.observe import timing
from postfork.url import DatabaseURL, parse_url

RECYCLE_SECONDS = 1800  # pool_recycle, below MariaDB's default wait_timeout (8 h), as advised


class SQLAlchemyPool:
    def __init__(
        self,
        url: str | DatabaseURL,
        *,
        driver: str = "mysqlclient",
        max_size: int = 2,
        checkout_timeout: float = 2.0,
        connect_timeout: float = 2.0,
        connect_args: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            from sqlalchemy import create_engine  # the baseline's own dependency
        except ImportError as exc:
            raise MissingExtra(
                "SQLAlchemy", "sqlalchemy", hint="for POSTFORK_CONNECT=sqlalchemy"
            ) from exc

        self.url = parse_url(url) if isinstance(url, str) else url
        self._driver = load_driver(driver)
        self._connect_seconds = 0.0  # total spent in connects; leases read the difference

        def creator() -> Any:
            started = time.perf_counter()
            try:
                return connect(self.url, driver=driver, timeout=connect_timeout, extra=connect_args)
            finally:
                self._connect_seconds += time.perf_counter() - started

        dialect = "mysql+mysqldb" if driver == "mysqlclient" else "mysql+pymysql"
        self.engine = create_engine(
            f"{dialect}://",
            creator=creator,
            pool_size=max_size,
            max_overflow=0,
            pool_timeout=checkout_timeout,
            pool_pre_ping=True,
            pool_recycle=RECYCLE_SECONDS,
        )

    def connection(self) -> _Lease:
        return _Lease(self)

    def is_disconnect(self, exc: BaseException) -> bool:
        return self._driver.is_disconnect(getattr(exc, "orig", exc))

    def stats(self) -> dict[str, Any]:
        pool: Any = self.engine.pool
        return {"idle": pool.checkedin(), "in_use": pool.checkedout()}


class _Lease:
    """``with`` block around ``engine.raw_connection()``: the checkout (with its ping, and a
    connect when the pool is empty) on entry, the return (with its rollback) on exit."""

    def __init__(self, pool: SQLAlchemyPool) -> None:
        self._pool = pool
        self._conn: Any = None
        self.connect_seconds = 0.0
        self.wait_seconds = 0.0  # the checkout apart from any connect: queueing and the ping
        self._held_since = 0.0

    def __enter__(self) -> Any:
        from sqlalchemy import exc as sa_exc

        connected_before = self._pool._connect_seconds
        started = time.perf_counter()
        try:
            self._conn = self._pool.engine.raw_connection()
        except sa_exc.TimeoutError as exc:
            raise PoolTimeout(f"no connection free within the checkout timeout: {exc}") from exc
        except sa_exc.DBAPIError as exc:
            raise DatabaseUnavailable(f"cannot connect: {exc.orig}") from exc
        finally:
            self.connect_seconds = self._pool._connect_seconds - connected_before
            self.wait_seconds = time.perf_counter() - started - self.connect_seconds
        timing.report_checkout(self.wait_seconds, self.connect_seconds)  # as postfork's pool
        self._held_since = time.perf_counter()
        return self._conn

    def invalidate(self, *, timed_out: bool = False) -> None:
        """Discard this connection on exit instead of returning it (as postfork's Lease)."""
        self._conn.invalidate()

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._conn.close()  # QueuePool's reset: the rollback on return counts as db time
        finally:
            timing.report_held(time.perf_counter() - self._held_since)


# -- the asyncio baselines (the ASGI twin: postfork_tools.service.asgi) ------------------------


class AsyncSQLAlchemyPool:
    """SQLAlchemy's async engine on its own ``AsyncAdaptedQueuePool``, as its documentation
    configures it: made when the app loads, connecting on a worker's first request; with
    ``pre_ping`` every checkout pings (``sqlalchemy-async-preping``), without it a dead
    connection is found by the query that uses it (``sqlalchemy-async``)."""

    def __init__(
        self,
        url: DatabaseURL,
        *,
        driver: str,
        max_size: int,
        checkout_timeout: float,
        connect_timeout: float,
        pre_ping: bool,
        connect_args: Mapping[str, Any],
    ) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        self.url = url
        self._driver = load_async_driver(driver)
        self.connect_seconds = 0.0  # total spent in connects; leases read the difference

        async def creator() -> Any:
            started = time.perf_counter()
            try:
                return await self._driver.connect(
                    self.url, connect_timeout=connect_timeout, autocommit=True, extra=connect_args
                )
            finally:
                self.connect_seconds += time.perf_counter() - started

        self.engine = create_async_engine(
            f"mysql+{driver}://",
            async_creator=creator,
            pool_size=max_size,
            max_overflow=0,
            pool_timeout=checkout_timeout,
            pool_pre_ping=pre_ping,
            pool_recycle=RECYCLE_SECONDS,
        )

    def connection(self) -> _AsyncLease:
        return _AsyncLease(self, self._acquire, self._release)

    async def _acquire(self) -> tuple[Any, Any]:
        checked_out = await self.engine.raw_connection()
        return checked_out.driver_connection, checked_out

    async def _release(self, checked_out: Any) -> None:
        from sqlalchemy.util.concurrency import greenlet_spawn

        await greenlet_spawn(checked_out.close)  # its reset awaits, in SQLAlchemy's greenlet

    def is_disconnect(self, exc: BaseException) -> bool:
        return self._driver.is_disconnect(getattr(exc, "orig", exc))

    def stats(self) -> dict[str, Any]:
        pool: Any = self.engine.pool
        return {"idle": pool.checkedin(), "in_use": pool.checkedout()}

    async def open(self) -> None:
        """Nothing: SQLAlchemy's pool connects on first use."""

    async def close(self) -> None:
        await self.engine.dispose()


class DriverPool:
    """The driver's own pool (``create_pool(minsize=1)``) opened in the app's lifespan: the
    best a careful asyncio user does today. Its connections are made at start-up and kept; it
    has no lifetime below ``wait_timeout`` with jitter, no fork handling, and it is bound to the
    loop that made it."""

    def __init__(
        self,
        url: DatabaseURL,
        *,
        driver: str,
        max_size: int,
        connect_timeout: float,
        connect_args: Mapping[str, Any],
    ) -> None:
        self.url = url
        self._driver = load_async_driver(driver)
        self._module = importlib.import_module(driver)
        self._kwargs = {
            **self._driver.connect_arguments(url, connect_timeout, True, connect_args),
            "pool_recycle": RECYCLE_SECONDS,
        }
        self._max_size = max_size
        self.pool: Any = None
        self.connect_seconds = 0.0

    async def open(self) -> None:
        started = time.perf_counter()
        create = self._module.create_pool
        self.pool = await create(minsize=1, maxsize=self._max_size, **self._kwargs)
        self.connect_seconds += time.perf_counter() - started

    async def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            await self.pool.wait_closed()

    def connection(self) -> _AsyncLease:
        return _AsyncLease(self, self._acquire, self._release)

    async def _acquire(self) -> tuple[Any, Any]:
        size = self.pool.size
        started = time.perf_counter()
        conn = await self.pool.acquire()
        if self.pool.size > size:  # it connected for this checkout
            self.connect_seconds += time.perf_counter() - started
        return conn, conn

    async def _release(self, conn: Any) -> None:
        self.pool.release(conn)

    def is_disconnect(self, exc: BaseException) -> bool:
        return self._driver.is_disconnect(exc)

    def stats(self) -> dict[str, Any]:
        size = self.pool.size if self.pool is not None else 0
        idle = self.pool.freesize if self.pool is not None else 0
        return {"idle": idle, "in_use": size - idle}


class _AsyncLease:
    """``async with`` around a baseline's checkout, reporting to the timing middleware as
    postfork's pool does: wait and connect on entry, the time held on exit."""

    def __init__(
        self,
        pool: AsyncSQLAlchemyPool | DriverPool,
        acquire: Callable[[], Awaitable[tuple[Any, Any]]],
        release: Callable[[Any], Awaitable[None]],
    ) -> None:
        self._pool, self._acquire, self._release = pool, acquire, release
        self._conn: Any = None
        self._handle: Any = None  # what the baseline's pool takes back
        self._held_since = 0.0
        self._invalid = False

    async def __aenter__(self) -> Any:
        connected_before = self._pool.connect_seconds
        started = time.perf_counter()
        try:
            self._conn, self._handle = await self._acquire()
        finally:
            connect = self._pool.connect_seconds - connected_before
            timing.report_checkout(time.perf_counter() - started - connect, connect)
        self._held_since = time.perf_counter()
        return self._conn

    def invalidate(self, *, timed_out: bool = False) -> None:
        self._invalid = True

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._invalid:
                self._conn.close()  # the driver's own close: the baseline pool drops it
            await self._release(self._handle)
        finally:
            timing.report_held(time.perf_counter() - self._held_since)


def async_baseline(settings: Any) -> AsyncSQLAlchemyPool | DriverPool:
    """The asyncio baseline its ``POSTFORK_CONNECT`` names (``service.asgi``)."""
    from postfork_tools.service.rows import text_datetimes

    url = parse_url(settings.database_url)
    common: dict[str, Any] = {
        "driver": settings.driver,
        "max_size": settings.pool_size,
        "connect_timeout": settings.connect_timeout,
        "connect_args": {"conv": text_datetimes(settings.driver)},
    }
    if settings.connect == "driver-pool":
        return DriverPool(url, **common)
    return AsyncSQLAlchemyPool(
        url,
        **common,
        checkout_timeout=settings.checkout_timeout,
        pre_ping=settings.connect == "sqlalchemy-async-preping",
    )
