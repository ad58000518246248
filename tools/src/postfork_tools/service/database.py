"""The service's one kind of database work: a read on a pooled connection, and what its failure
means. One implementation for every pool the service runs on: postfork's thread pool and its
asyncio pool, and the baselines' (SQLAlchemy's, the driver's own). A call that does not
return an awaitable (a DB-API driver's) is used as it is; the WSGI service drives this
coroutine to its end without a loop, since then nothing in it suspends.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from postfork.coroutines import result
from postfork.errors import DeadlineExceeded
from postfork.pool import current_deadline


class Reads(Protocol):
    """What the service asks of a pool (a postfork pool, a Cluster's reader, a baseline)."""

    def connection(self) -> Any: ...

    def is_disconnect(self, exc: BaseException) -> bool: ...

    def stats(self) -> Mapping[str, Any]: ...


class QueryTimedOut(Exception):
    """The query outlived the URL's read_timeout; the client gets a 503 saying so."""


class LostBeforeRows(Exception):
    """The connection died before the query returned a row: safe to run the read again."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class Database:
    """Reads through ``pool``; ``read_timeout``: the URL's (a query that failed after that long
    timed out, and is not retried)."""

    def __init__(self, pool: Reads, read_timeout: float) -> None:
        self.pool = pool
        self.read_timeout = read_timeout

    def is_disconnect(self, exc: BaseException) -> bool:
        return self.pool.is_disconnect(exc)

    def stats(self) -> Mapping[str, Any]:
        return self.pool.stats()

    async def rows(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        """One query on a pooled connection; its failure classified (see :meth:`failure`)."""
        lease = self.pool.connection()
        async with entered(lease) as conn:
            cursor = await result(conn.cursor())  # aiomysql's is awaited
            started = time.monotonic()
            try:
                try:
                    await result(cursor.execute(sql, args))
                except Exception as exc:
                    raise self.failure(lease, exc, time.monotonic() - started) from exc
                return list(await result(cursor.fetchall()))
            finally:
                await result(cursor.close())

    def failure(self, lease: Any, exc: Exception, waited: float) -> Exception:
        """What a query's failure means. A lost connection never goes back to the pool (its
        protocol state is unknown); one lost past the read timeout says the server went
        silent (the pool then fails fast until it answers); past the request's deadline, the
        deadline cut it off; lost before any row, it may be read again."""
        if not self.pool.is_disconnect(exc):
            return exc
        timed_out = bool(self.read_timeout) and waited >= 0.9 * self.read_timeout
        lease.invalidate(timed_out=timed_out)
        limit = current_deadline()
        if limit is not None and limit.exceeded:
            return DeadlineExceeded(
                f"the request's deadline ({limit.seconds:g}s) cut off a query after {waited:.3f}s",
                seconds=limit.seconds,
            )
        if timed_out:  # a slow query: running it again would only double the wait
            return QueryTimedOut(
                f"database query exceeded the read timeout ({self.read_timeout:g} s)"
            )
        return LostBeforeRows(exc)


def entered(lease: Any) -> Any:
    """A lease of either pool, for ``async with``: an asyncio pool's as it is, a thread pool's
    entered and left as ``with`` would (a class, not a generator: once per request)."""
    return lease if hasattr(lease, "__aenter__") else _Entered(lease)


class _Entered:
    __slots__ = ("lease",)

    def __init__(self, lease: Any) -> None:
        self.lease = lease

    async def __aenter__(self) -> Any:
        return self.lease.__enter__()

    async def __aexit__(self, *exc_info: Any) -> Any:
        return self.lease.__exit__(*exc_info)
