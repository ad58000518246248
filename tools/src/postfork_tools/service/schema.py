"""Schema and a deterministic, idempotent seed-data generator (``postfork db seed``)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
from collections.abc import Iterator
from typing import Any

from postfork.drivers import connect
from postfork.url import DatabaseURL

log = logging.getLogger("postfork_tools.service.schema")

CATEGORIES = (
    "books", "electronics", "garden", "grocery", "health", "home",
    "music", "office", "outdoors", "sports", "toys", "travel",
)  # fmt: skip
EPOCH = dt.datetime(2026, 1, 1)
_BATCH = 5000

DDL = (
    """CREATE TABLE IF NOT EXISTS accounts (
        id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
        name VARCHAR(64) NOT NULL,
        created_at DATETIME(6) NOT NULL
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS orders (
        id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
        account_id BIGINT UNSIGNED NOT NULL,
        amount_cents INT UNSIGNED NOT NULL,
        category VARCHAR(32) NOT NULL,
        created_at DATETIME(6) NOT NULL,
        KEY account_orders (account_id, id)
    ) ENGINE=InnoDB""",
    """CREATE TABLE IF NOT EXISTS postfork_seed (
        id TINYINT NOT NULL PRIMARY KEY,
        accounts INT NOT NULL,
        orders_per_account INT NOT NULL,
        seed INT NOT NULL,
        orders INT NOT NULL
    ) ENGINE=InnoDB""",
)


@dataclasses.dataclass(frozen=True)
class SeedPlan:
    accounts: int = 1000
    orders_per_account: int = 100
    seed: int = 42


@dataclasses.dataclass(frozen=True)
class SeedReport:
    accounts: int
    orders: int
    created: bool  # False when the data was already there


def _accounts(plan: SeedPlan, rng: random.Random) -> list[tuple[Any, ...]]:
    return [
        (i, f"account-{i:06d}", EPOCH - dt.timedelta(days=rng.randint(30, 900)))
        for i in range(1, plan.accounts + 1)
    ]


def _orders(plan: SeedPlan, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    low, high = plan.orders_per_account // 2, plan.orders_per_account * 3 // 2
    order_id = 0
    for account in range(1, plan.accounts + 1):
        for _ in range(rng.randint(low, high)):
            order_id += 1
            at = EPOCH + dt.timedelta(seconds=rng.randint(0, 300 * 86400))
            yield (order_id, account, rng.randint(100, 50_000), rng.choice(CATEGORIES), at)


def _batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def seed(conn: Any, plan: SeedPlan = SeedPlan()) -> SeedReport:
    """Create the tables and load the plan's data unless exactly that data is already there."""
    cursor = conn.cursor()
    for statement in DDL:
        cursor.execute(statement)
    cursor.execute(
        "SELECT accounts, orders_per_account, seed, orders FROM postfork_seed WHERE id = 1"
    )
    recorded = cursor.fetchone()
    if recorded and tuple(recorded[:3]) == (plan.accounts, plan.orders_per_account, plan.seed):
        return SeedReport(accounts=plan.accounts, orders=int(recorded[3]), created=False)
    rng = random.Random(plan.seed)
    cursor.execute("DELETE FROM postfork_seed")
    cursor.execute("TRUNCATE TABLE orders")
    cursor.execute("TRUNCATE TABLE accounts")
    cursor.executemany(
        "INSERT INTO accounts (id, name, created_at) VALUES (%s, %s, %s)", _accounts(plan, rng)
    )
    orders = 0
    for batch in _batches(_orders(plan, rng)):
        cursor.executemany(
            "INSERT INTO orders (id, account_id, amount_cents, category, created_at) "
            "VALUES (%s, %s, %s, %s, %s)",
            batch,
        )
        orders += len(batch)
    cursor.execute(
        "INSERT INTO postfork_seed (id, accounts, orders_per_account, seed, orders) "
        "VALUES (1, %s, %s, %s, %s)",
        (plan.accounts, plan.orders_per_account, plan.seed, orders),
    )
    conn.commit()
    log.info("seeded %d accounts and %d orders", plan.accounts, orders)
    return SeedReport(accounts=plan.accounts, orders=orders, created=True)


def seed_database(url: DatabaseURL, plan: SeedPlan = SeedPlan()) -> SeedReport:
    """``seed()`` over a connection of its own (``postfork db seed``, ``serve``, tests)."""
    conn = connect(url)
    try:
        return seed(conn, plan)
    finally:
        conn.close()
