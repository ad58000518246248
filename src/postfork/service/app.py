"""The service's WSGI application: plain WSGI and a three-line router.

Plain WSGI because the service has four routes and its point is what happens around the
database: no framework code sits between a request and the pool, and what a profile shows is
the request, the pool and the driver.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import DatabaseUnavailable, DeadlineExceeded, PoolError
from ..pool import current_deadline as deadline_of_this_request
from ..pool import deadline
from .summary import iso, money, summarize
from .validation import DEFAULT_LIMIT, HTTPError, limit, positive_id, query_parameters

if TYPE_CHECKING:
    from ..install import Installation
    from ..pool import Pool
    from ..topology import Cluster, RoutedLease
    from .baselines import SQLAlchemyPool

log = logging.getLogger("postfork.service")

StartResponse = Callable[..., Any]
RETRY_AFTER_SECONDS = "1"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

SUMMARY_SQL = (
    "SELECT o.amount_cents, o.category, o.created_at FROM accounts a "
    "LEFT JOIN orders o ON o.account_id = a.id WHERE a.id = %s"
)
ORDERS_SQL = (
    "SELECT o.id, o.amount_cents, o.category, o.created_at FROM accounts a "
    "LEFT JOIN orders o ON o.account_id = a.id AND o.id < %s "
    "WHERE a.id = %s ORDER BY o.id DESC LIMIT %s"
)


class ReplicaReads:
    """What the service asks of its pool, on a :class:`~postfork.Cluster`: every query here
    is a read, so each checkout is the cluster's reader (a fresh replica, else the primary)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.url = cluster.members[0].pool.url

    def connection(self) -> RoutedLease:
        return self.cluster.reader()

    def is_disconnect(self, exc: BaseException) -> bool:
        return self.cluster.is_disconnect(exc)

    def stats(self) -> dict[str, Any]:
        return self.cluster.stats()


class Service:
    """The WSGI callable: routes, input rules, queries through the pool, JSON out."""

    def __init__(
        self,
        pool: Pool | SQLAlchemyPool | ReplicaReads,
        installation: Installation | None,
        connect_mode: str,
        *,
        request_deadline: float | None = None,
    ) -> None:
        self.pool = pool
        # past it, a request is answered with a 503 whatever the database does (None: no bound)
        self.request_deadline = request_deadline
        # the URL's read_timeout: a query that fails after this long timed out (not retried)
        self.read_timeout = float(pool.url.options.get("read_timeout", 0) or 0)
        self.installation = installation
        self.connect_mode = connect_mode
        self.routes: list[tuple[re.Pattern[str], Callable[..., dict[str, Any]]]] = [
            (re.compile(r"/v1/accounts/([^/]+)/summary"), self.account_summary),
            (re.compile(r"/v1/accounts/([^/]+)/orders"), self.account_orders),
            (re.compile(r"/healthz"), self.healthz),
            (re.compile(r"/readyz"), self.readyz),
        ]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status, body, headers = self._respond(environ)
        payload = json.dumps(body, separators=(",", ":")).encode()
        headers.update({"Content-Type": "application/json", "Content-Length": str(len(payload))})
        start_response(f"{status} {_REASONS[status]}", list(headers.items()))
        # the pool's upkeep runs after the response by itself (postfork.install: the server's
        # after-request hook and a timer); lazy mode has none: the story's "before"
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [payload]

    def _respond(self, environ: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        try:
            if self.request_deadline is None:
                return 200, self._route(environ), {}
            with deadline(self.request_deadline):
                return 200, self._route(environ), {}
        except HTTPError as exc:
            return exc.status, {"error": exc.message}, exc.headers
        except DeadlineExceeded as exc:
            log.warning("503: %s", exc)
            message = f"database did not answer within the request deadline ({exc.seconds:g} s)"
            return 503, {"error": message}, _retry_after()
        except (DatabaseUnavailable, PoolError) as exc:
            log.warning("503: %s", exc)
            return 503, {"error": "database unavailable, retry shortly"}, _retry_after()
        except _QueryTimedOut as exc:
            log.warning("503: %s", exc)
            return 503, {"error": str(exc)}, _retry_after()
        except Exception as exc:
            if self.pool.is_disconnect(exc):
                log.warning("503: connection lost during the request: %r", exc)
                return 503, {"error": "database connection lost, retry shortly"}, _retry_after()
            log.exception("500 on %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
            return 500, {"error": "internal error"}, {}

    def _route(self, environ: dict[str, Any]) -> dict[str, Any]:
        path = environ.get("PATH_INFO", "") or "/"
        for pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                raise HTTPError(405, "only GET and HEAD are allowed", {"Allow": "GET, HEAD"})
            return handler(environ, *match.groups())
        raise HTTPError(404, "no such endpoint")

    # -- endpoints ------------------------------------------------------------------------

    def account_summary(self, environ: dict[str, Any], raw_id: str) -> dict[str, Any]:
        account_id = positive_id(raw_id, "account id")
        query_parameters(environ.get("QUERY_STRING", ""), {})
        rows = self._query(SUMMARY_SQL, (account_id,))
        if not rows:
            raise HTTPError(404, f"account {account_id} not found")
        orders = [row for row in rows if row[0] is not None]
        return summarize(account_id, orders)

    def account_orders(self, environ: dict[str, Any], raw_id: str) -> dict[str, Any]:
        account_id = positive_id(raw_id, "account id")
        params = query_parameters(
            environ.get("QUERY_STRING", ""), {"limit": limit, "before": _before}
        )
        page_size = params.get("limit", DEFAULT_LIMIT)
        before = params.get("before", 2**63 - 1)
        rows = self._query(ORDERS_SQL, (before, account_id, page_size))
        if not rows:
            raise HTTPError(404, f"account {account_id} not found")
        orders = [
            {
                "id": row[0],
                "amount": money(row[1]),
                "category": row[2],
                "created_at": iso(row[3]),
            }
            for row in rows
            if row[0] is not None
        ]
        next_before = orders[-1]["id"] if len(orders) == page_size else None
        return {"account_id": account_id, "orders": orders, "next_before": next_before}

    def healthz(self, environ: dict[str, Any]) -> dict[str, Any]:
        return {"status": "alive", "pid": os.getpid()}

    def readyz(self, environ: dict[str, Any]) -> dict[str, Any]:
        if self.installation is not None and not self.installation.ready():
            raise HTTPError(
                503, "not ready: the pool has no connection to the database", _retry_after()
            )
        stats = self.pool.stats()
        return {
            "status": "ready",
            "pid": os.getpid(),
            "connect": self.connect_mode,
            "idle": stats["idle"],
            "in_use": stats["in_use"],
        }

    # -- database -------------------------------------------------------------------------

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        """One query on a pooled connection; the pool reports its wait, connect and hold time
        to the timing middleware (``Server-Timing``, the access log).

        Every query here is an idempotent read, so when the connection turns out dead before
        any row arrived (the server killed it, or went away while the query was sent) it is
        retried once on a fresh connection; the dead one is discarded by the pool. A query that
        failed only after the URL's ``read_timeout`` timed out: not retried, a 503 that says
        so. Past the request's deadline: never retried, a 503 that says so. Anything else, or a
        second failure, goes up (and becomes a JSON 503)."""
        try:
            return self._query_once(sql, args)
        except _LostBeforeRows as lost:
            log.warning(
                "connection lost before any row (%r); retrying once on a fresh one", lost.error
            )
        try:
            return self._query_once(sql, args)
        except _LostBeforeRows as lost:
            raise lost.error from None

    def _query_once(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        lease = self.pool.connection()
        with lease as conn:
            cursor = conn.cursor()
            started = time.monotonic()
            try:
                try:
                    cursor.execute(sql, args)
                except Exception as exc:
                    if not self.pool.is_disconnect(exc):
                        raise
                    waited = time.monotonic() - started
                    timed_out = bool(self.read_timeout) and waited >= 0.9 * self.read_timeout
                    # never back to the pool (its protocol state is unknown); a timeout says
                    # the server went silent: the pool fails fast until it answers again
                    lease.invalidate(timed_out=timed_out)
                    limit = deadline_of_this_request()
                    if limit is not None and limit.exceeded:
                        raise DeadlineExceeded(
                            f"the request's deadline ({limit.seconds:g}s) cut off a query after "
                            f"{waited:.3f}s",
                            seconds=limit.seconds,
                        ) from exc
                    if timed_out:
                        raise _QueryTimedOut(
                            f"database query exceeded the read timeout ({self.read_timeout:g} s)"
                        ) from exc  # a slow query: running it again would only double the wait
                    raise _LostBeforeRows(exc) from exc
                return list(cursor.fetchall())
            finally:
                cursor.close()

    def warmup_request(self) -> None:
        """One synthetic request through the whole app (for ``install(warmup=...)``)."""
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/v1/accounts/1/summary",
            "QUERY_STRING": "",
            "postfork.warmup": True,
        }
        list(self(environ, lambda status, headers: None))


class _QueryTimedOut(Exception):
    """The query outlived the URL's read_timeout; the client gets a 503 saying so."""


class _LostBeforeRows(Exception):
    """The connection died before the query returned a row: safe to run the read again."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _before(text: str) -> int:
    return positive_id(text, "before")


def _retry_after() -> dict[str, str]:
    return {"Retry-After": RETRY_AFTER_SECONDS}
