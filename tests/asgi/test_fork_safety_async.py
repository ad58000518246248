"""The fork matrix for asyncio: a parent whose AsyncPool (or async engine on postfork) is warm
in a loop that lives across the forks, as in a master that preloaded and ran an app; children
leaving in every way, both asyncio drivers, both fork paths. The controls, the driver's own pool
and SQLAlchemy's stock async engine, break."""

from __future__ import annotations

import pytest

from postfork import DatabaseURL
from postfork.doctor.forkcheck import EXIT_WAYS
from postfork.doctor.forkcheck import run_in_subprocess as forkcheck

ROUNDS = 3


@pytest.fixture(params=("asyncmy", "aiomysql"))
def async_driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("target", ["async-pool", "async-sqlalchemy"])
@pytest.mark.parametrize("fork", ["os", "libc"])
def test_parent_sessions_survive_children_leaving_in_every_way(
    database_url: DatabaseURL, async_driver: str, fork: str, target: str
) -> None:
    report = forkcheck(
        database_url,
        *("--target", target, "--driver", async_driver, "--fork", fork, "--rounds", str(ROUNDS)),
    )
    expected_exit = {way: [1 if way == "raise" else 0] * ROUNDS for way in EXIT_WAYS}
    assert report["exit_codes"] == expected_exit
    assert report["sessions_unchanged"], report
    assert report["parent_connects"] == 3
    assert report["parent_discards"] == dict.fromkeys(report["parent_discards"], 0)


@pytest.mark.parametrize(
    ("target", "must_break"),
    [
        # a child's transports, collected or closed, unregister the parent's sockets from the
        # epoll instance they share (aiomysql: on every exit); one that uses the pool answers
        # the parent's session for it
        ("async-driver-pool", {"pool-close"}),
        ("async-sqlalchemy-stock", {"use-and-exit", "raise", "os-exit", "pool-close"}),
    ],
)
def test_without_postfork_a_child_breaks_the_parents_sessions(
    database_url: DatabaseURL, async_driver: str, target: str, must_break: set[str]
) -> None:
    report = forkcheck(
        database_url, "--target", target, "--driver", async_driver, check_seconds=2.0
    )
    broken = {way for way, survived in report["survived"].items() if survived is not True}
    assert must_break <= broken, report
