"""The service's baseline: SQLAlchemy's ``QueuePool`` with ``pool_pre_ping`` (``sqlalchemy`` mode).

The common alternative to postfork, configured the way its documentation suggests for MySQL
behind a pre-fork server: the engine is created when the app loads (in the uWSGI master when
apps are preloaded; it opens nothing there), each worker connects on its first request, every
checkout pings the server (one round trip) and every return rolls back (another). The service
runs on it unchanged: it offers the slice of :class:`postfork.Pool`'s interface the service uses.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..drivers import connect, load_driver
from ..errors import DatabaseUnavailable, MissingExtra, PoolTimeout
from ..observe import timing
from ..url import DatabaseURL, parse_url

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
