"""``GET /v1/accounts/{id}/summary`` through SQLAlchemy's ORM ``Session``: on a stock engine
(QueuePool with ``pool_pre_ping``, connects on a worker's first request) or on postfork's pool
(installed: warm before the first request)."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    Integer,
    String,
    create_engine,
    event,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from postfork.install import install
from postfork.observe.timing import report_checkout
from postfork.sqlalchemy import PostforkPool, engine_url
from postfork.wsgi import warmup_request
from postfork_tools.service.settings import WARMUP_PATH
from postfork_tools.service.summary import summarize
from postfork_tools.service.validation import HTTPError, positive_id

SUMMARY = re.compile(r"/v1/accounts/([^/]+)/summary")


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


ORDERS = select(Order.amount_cents, Order.category, Order.created_at)


class SummaryApp:
    def __init__(self, database_url: str, *, on_postfork: bool, pool_size: int) -> None:
        options: dict[str, Any] = {"pool_size": pool_size}
        if on_postfork:
            options["poolclass"] = PostforkPool
        else:
            options.update(max_overflow=0, pool_pre_ping=True)  # the common recipe
        self.engine = create_engine(engine_url(database_url), **options)
        if on_postfork:
            install(self.engine, warmup=warmup_request(self, WARMUP_PATH))
        else:
            _report_connects(self.engine)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        status, body = self._respond(environ.get("PATH_INFO", ""))
        payload = json.dumps(body, separators=(",", ":")).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        )
        return [payload]

    def _respond(self, path: str) -> tuple[str, dict[str, Any]]:
        if path == "/healthz":
            return "200 OK", {"status": "alive"}
        match = SUMMARY.fullmatch(path)
        if match is None:
            return "404 Not Found", {"error": "no such endpoint"}
        try:
            account_id = positive_id(match.group(1), "account id")
        except HTTPError as exc:
            return "400 Bad Request", {"error": exc.message}
        with Session(self.engine) as session:
            rows = session.execute(ORDERS.where(Order.account_id == account_id))
            orders = [(row[0], row[1], row[2]) for row in rows]
            if not orders and session.get(Account, account_id) is None:
                return "404 Not Found", {"error": f"account {account_id} not found"}
        return "200 OK", summarize(account_id, orders)


def _report_connects(engine: Engine) -> None:
    """A stock pool connects inside a request where postfork's timing middleware cannot see it:
    time each connect (from the dialect's ``do_connect`` to the pool's ``connect`` event) and
    report it as postfork's pool would, so the bench counts connects on the request path."""
    started = threading.local()

    @event.listens_for(engine, "do_connect")
    def _before(*_: Any) -> None:
        started.at = time.perf_counter()

    @event.listens_for(engine, "connect")
    def _after(*_: Any) -> None:
        report_checkout(0.0, time.perf_counter() - started.at)
