"""The service's application, for WSGI and for ASGI: a three-line router, no framework.

No framework because the service has four routes and its point is what happens around the
database: no framework code sits between a request and the pool, and what a profile shows is
the request, the pool and the driver. One request is one coroutine (``Service.respond``): the
ASGI face awaits it on the asyncio pool, the WSGI face runs it on the thread pool, where
nothing in it suspends.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from postfork.coroutines import result, run_to_end
from postfork.errors import DatabaseUnavailable, DeadlineExceeded, PoolError
from postfork.pool import deadline
from postfork_tools.service.database import Database, LostBeforeRows, QueryTimedOut
from postfork_tools.service.summary import iso, money, summarize
from postfork_tools.service.validation import (
    DEFAULT_LIMIT,
    HTTPError,
    limit,
    positive_id,
    query_parameters,
)

if TYPE_CHECKING:
    from postfork.topology import Cluster, RoutedLease

log = logging.getLogger("postfork_tools.service")

StartResponse = Callable[..., Any]
Headers = dict[str, str]
Endpoint = Callable[..., Awaitable[dict[str, Any]]]
ReadyCheck = Callable[[], bool | Awaitable[bool]]
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
    """The service's requests, whatever the protocol: routes, input rules, reads through the
    pool, JSON out. :meth:`respond` handles one request as a coroutine; the WSGI face runs it
    to its end without a loop (on a thread pool nothing in it suspends), the ASGI face
    (:meth:`asgi`) awaits it."""

    def __init__(
        self,
        database: Database,
        ready: ReadyCheck | None,
        connect_mode: str,
        *,
        request_deadline: float | None = None,
    ) -> None:
        self.database = database
        # past it, a request is answered with a 503 whatever the database does (None: no bound)
        self.request_deadline = request_deadline
        self.ready = ready  # for /readyz: the pool warm, or able to warm now
        self.connect_mode = connect_mode
        self.routes: list[tuple[re.Pattern[str], Endpoint]] = [
            (re.compile(r"/v1/accounts/([^/]+)/summary"), self.account_summary),
            (re.compile(r"/v1/accounts/([^/]+)/orders"), self.account_orders),
            (re.compile(r"/healthz"), self.healthz),
            (re.compile(r"/readyz"), self.readyz),
        ]

    # -- the two faces --------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        status, payload, headers = run_to_end(
            self.respond(method, path, environ.get("QUERY_STRING", ""))
        )
        start_response(f"{status} {_REASONS[status]}", list(headers.items()))
        # the pool's upkeep runs after the response by itself (postfork.install: the server's
        # after-request hook and a timer); lazy mode has none: the problem
        return [] if method == "HEAD" else [payload]

    async def asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The ASGI application (HTTP; a lifespan is the middleware's, see service.asgi)."""
        if scope["type"] != "http":
            raise ValueError(f"the service serves HTTP, not {scope['type']!r}")
        query = scope.get("query_string", b"").decode("latin-1")
        status, payload, headers = await self.respond(scope["method"], scope["path"], query)
        raw_headers = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        body = b"" if scope["method"] == "HEAD" else payload
        await send({"type": "http.response.body", "body": body})

    async def respond(self, method: str, path: str, query: str) -> tuple[int, bytes, Headers]:
        """One request: (status, JSON payload, headers)."""
        status, body, headers = await self._answer(method, path, query)
        payload = json.dumps(body, separators=(",", ":")).encode()
        headers.update({"Content-Type": "application/json", "Content-Length": str(len(payload))})
        return status, payload, headers

    async def _answer(self, method: str, path: str, query: str) -> tuple[int, Any, Headers]:
        try:
            if self.request_deadline is None:
                return 200, await self._route(method, path, query), {}
            with deadline(self.request_deadline):
                return 200, await self._route(method, path, query), {}
        except HTTPError as exc:
            return exc.status, {"error": exc.message}, exc.headers
        except DeadlineExceeded as exc:
            log.warning("503: %s", exc)
            message = f"database did not answer within the request deadline ({exc.seconds:g} s)"
            return 503, {"error": message}, _retry_after()
        except (DatabaseUnavailable, PoolError) as exc:
            log.warning("503: %s", exc)
            return 503, {"error": "database unavailable, retry shortly"}, _retry_after()
        except QueryTimedOut as exc:
            log.warning("503: %s", exc)
            return 503, {"error": str(exc)}, _retry_after()
        except Exception as exc:
            if self.database.is_disconnect(exc):
                log.warning("503: connection lost during the request: %r", exc)
                return 503, {"error": "database connection lost, retry shortly"}, _retry_after()
            log.exception("500 on %s %s", method, path)
            return 500, {"error": "internal error"}, {}

    async def _route(self, method: str, path: str, query: str) -> dict[str, Any]:
        for pattern, handler in self.routes:
            match = pattern.fullmatch(path or "/")
            if match is None:
                continue
            if method not in ("GET", "HEAD"):
                raise HTTPError(405, "only GET and HEAD are allowed", {"Allow": "GET, HEAD"})
            return await handler(query, *match.groups())
        raise HTTPError(404, "no such endpoint")

    # -- endpoints ------------------------------------------------------------------------

    async def account_summary(self, query: str, raw_id: str) -> dict[str, Any]:
        account_id = positive_id(raw_id, "account id")
        query_parameters(query, {})
        rows = await self._query(SUMMARY_SQL, (account_id,))
        if not rows:
            raise HTTPError(404, f"account {account_id} not found")
        orders = [row for row in rows if row[0] is not None]
        return summarize(account_id, orders)

    async def account_orders(self, query: str, raw_id: str) -> dict[str, Any]:
        account_id = positive_id(raw_id, "account id")
        params = query_parameters(query, {"limit": limit, "before": _before})
        page_size = params.get("limit", DEFAULT_LIMIT)
        before = params.get("before", 2**63 - 1)
        rows = await self._query(ORDERS_SQL, (before, account_id, page_size))
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

    async def healthz(self, query: str) -> dict[str, Any]:
        return {"status": "alive", "pid": os.getpid()}

    async def readyz(self, query: str) -> dict[str, Any]:
        if self.ready is not None and not await result(self.ready()):
            raise HTTPError(
                503, "not ready: the pool has no connection to the database", _retry_after()
            )
        stats = self.database.stats()
        return {
            "status": "ready",
            "pid": os.getpid(),
            "connect": self.connect_mode,
            "idle": stats["idle"],
            "in_use": stats["in_use"],
        }

    # -- database -------------------------------------------------------------------------

    async def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        """One read on a pooled connection; the pool reports its wait, connect and hold time
        to the timing middleware (``Server-Timing``, the access log).

        Every query here is an idempotent read, so when the connection turns out dead before
        any row arrived (the server killed it, or went away while the query was sent) it is
        read again once on a fresh connection; the dead one is discarded by the pool. A query
        that failed only after the URL's ``read_timeout`` timed out: not read again, a 503
        that says so. Past the request's deadline: never again, a 503 that says so. Anything
        else, or a second failure, goes up (and becomes a JSON 503)."""
        try:
            return await self.database.rows(sql, args)
        except LostBeforeRows as lost:
            log.warning(
                "connection lost before any row (%r); retrying once on a fresh one", lost.error
            )
        try:
            return await self.database.rows(sql, args)
        except LostBeforeRows as lost:
            raise lost.error from None


def _before(text: str) -> int:
    return positive_id(text, "before")


def _retry_after() -> dict[str, str]:
    return {"Retry-After": RETRY_AFTER_SECONDS}
