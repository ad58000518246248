"""A Flask + Flask-SQLAlchemy shop written the way its docs and postfork's how-to write one:
customers, their orders and the orders' lines, one JSON endpoint reading through the ORM.

``SHOP_MODE``: ``stock`` (QueuePool with pool_pre_ping, no postfork), ``postfork`` (the pool
class and ``postfork.install(db.engine)``, nothing more) or ``warm`` (plus the documented
warm-up request). ``SHOP_URL``: the SQLAlchemy URL.
"""

from __future__ import annotations

import datetime
import decimal
import os
from typing import Any

from flask import Flask, abort
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, Numeric, String, func, select
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload

import postfork
import postfork.wsgi
from postfork.sqlalchemy import PostforkPool

from .worker_header import with_worker_header

MODE = os.environ.get("SHOP_MODE", "postfork")

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["SHOP_URL"]
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = (
    {"pool_pre_ping": True} if MODE == "stock" else {"poolclass": PostforkPool, "pool_size": 2}
)
db = SQLAlchemy(app)
if MODE != "stock":
    with app.app_context():
        warmup = postfork.wsgi.warmup_request(app, "/customers/1") if MODE == "warm" else None
        postfork.install(db.engine, warmup=warmup)


class Customer(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "shop_customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str] = mapped_column(String(120), unique=True)
    created: Mapped[datetime.datetime] = mapped_column(default=datetime.datetime.now)
    orders: Mapped[list[Order]] = relationship(back_populates="customer")


class Order(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "shop_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("shop_customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="paid")
    placed: Mapped[datetime.datetime] = mapped_column(default=datetime.datetime.now)
    customer: Mapped[Customer] = relationship(back_populates="orders")
    lines: Mapped[list[Line]] = relationship(back_populates="order")


class Line(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "shop_lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_orders.id"), index=True)
    sku: Mapped[str] = mapped_column(String(20))
    quantity: Mapped[int]
    price: Mapped[decimal.Decimal] = mapped_column(Numeric(10, 2))
    order: Mapped[Order] = relationship(back_populates="lines")


@app.get("/customers/<int:customer_id>")
def customer(customer_id: int) -> dict[str, Any]:
    found = db.session.get(Customer, customer_id) or abort(404)
    recent = db.session.scalars(
        select(Order)
        .where(Order.customer_id == customer_id)
        .options(selectinload(Order.lines))
        .order_by(Order.id.desc())
        .limit(3)
    )
    spent = db.session.scalar(
        select(func.coalesce(func.sum(Line.price * Line.quantity), 0))
        .join(Order)
        .where(Order.customer_id == customer_id)
    )
    return {
        "name": found.name,
        "spent": str(spent),
        "recent": [
            {"id": o.id, "status": o.status, "lines": [[li.sku, li.quantity] for li in o.lines]}
            for o in recent
        ],
    }


@app.get("/healthz")
def healthz() -> str:
    return "ok"


def seed(customers: int = 20) -> None:
    """The tables, made afresh, and a few rows per customer."""
    with app.app_context():
        db.drop_all()
        db.create_all()
        for number in range(1, customers + 1):
            person = Customer(name=f"customer {number}", email=f"c{number}@example.com")
            for order_number in range(4):
                order = Order(customer=person)
                for line in range(3):
                    order.lines.append(
                        Line(sku=f"sku-{order_number}-{line}", quantity=line + 1, price=9.5)
                    )
            db.session.add(person)
        db.session.commit()


application = with_worker_header(app)
