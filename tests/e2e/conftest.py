from __future__ import annotations

from collections.abc import Iterator

import pytest

from postfork._drivers import connect
from postfork._embedded import EmbeddedMariaDB
from postfork.service.schema import SeedPlan, seed

SMALL_PLAN = SeedPlan(accounts=50, orders_per_account=20, seed=7)


def seed_server(server: EmbeddedMariaDB, plan: SeedPlan = SMALL_PLAN) -> None:
    conn = connect(server.url)
    try:
        seed(conn, plan)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def service_db() -> Iterator[EmbeddedMariaDB]:
    """A private, seeded MariaDB for one test module: connection counts are ours alone."""
    with EmbeddedMariaDB() as server:
        seed_server(server)
        yield server
