from __future__ import annotations

from collections.abc import Iterator

import pytest

from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.service.schema import SeedPlan, seed_database

SMALL_PLAN = SeedPlan(accounts=50, orders_per_account=20, seed=7)


def seed_server(server: EmbeddedMariaDB, plan: SeedPlan = SMALL_PLAN) -> None:
    seed_database(server.url, plan)


@pytest.fixture(scope="module")
def service_db() -> Iterator[EmbeddedMariaDB]:
    """A private, seeded MariaDB for one test module: connection counts are ours alone."""
    with EmbeddedMariaDB() as server:
        seed_server(server)
        yield server
