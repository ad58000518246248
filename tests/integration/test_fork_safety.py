"""Fork matrix on a real server: the parent's sessions survive every child, both drivers,
both fork paths (os.fork with Python's at-fork hooks; libc fork without them, as in uWSGI), for
postfork's pool, a SQLAlchemy engine and Django connections on it; and the controls, without
postfork, break."""

from __future__ import annotations

import pytest

from postfork import DatabaseURL
from postfork.doctor.forkcheck import EXIT_WAYS
from postfork.doctor.forkcheck import run_in_subprocess as forkcheck

ROUNDS = 5


@pytest.mark.parametrize("target", ["pool", "sqlalchemy", "django"])
@pytest.mark.parametrize("fork", ["os", "libc"])
def test_parent_sessions_survive_children_leaving_in_every_way(
    database_url: DatabaseURL, driver: str, fork: str, target: str
) -> None:
    report = forkcheck(
        database_url,
        *("--target", target, "--driver", driver, "--fork", fork, "--rounds", str(ROUNDS)),
    )
    assert report["children"] == ROUNDS * len(EXIT_WAYS)
    expected_exit = {way: [1 if way == "raise" else 0] * ROUNDS for way in EXIT_WAYS}
    assert report["exit_codes"] == expected_exit
    # same server sessions before and after, and none was silently replaced by the pool
    assert report["sessions_unchanged"], report
    assert report["parent_connects"] == 3
    assert report["parent_discards"] == dict.fromkeys(report["parent_discards"], 0)


@pytest.mark.parametrize("fork", ["os", "libc"])
def test_without_postfork_a_child_exit_kills_the_parents_session(
    database_url: DatabaseURL, driver: str, fork: str
) -> None:
    """The control: the failure the matrix above guards against really happens here."""
    report = forkcheck(database_url, "--naive", "--driver", driver, "--fork", fork)
    assert not report["parent_survived"]
    assert "2013" in report["error"] or "2006" in report["error"]


@pytest.mark.parametrize("fork", ["os", "libc"])
def test_stock_sqlalchemy_with_its_fork_recipe_still_loses_the_parents_session(
    database_url: DatabaseURL, fork: str
) -> None:
    """The engine's control: QueuePool, every child calling engine.dispose(close=False) as
    SQLAlchemy's documentation advises. With mysqlclient a child that merely exits still kills
    the parent's sessions (it sends COM_QUIT when its connections are collected)."""
    report = forkcheck(
        database_url, "--target", "sqlalchemy-stock", "--driver", "mysqlclient", "--fork", fork
    )
    broken = {way for way, survived in report["survived"].items() if survived is not True}
    assert {"exit", "gc-collect", "pool-close"} <= broken, report
    assert "os-exit" not in broken  # os._exit skips collection: nothing is sent


@pytest.mark.parametrize(
    ("driver_name", "must_break"),
    [("mysqlclient", {"exit", "gc-collect", "pool-close"}), ("pymysql", {"pool-close"})],
)
def test_stock_django_loses_the_parents_sessions_when_a_child_leaves(
    database_url: DatabaseURL, driver_name: str, must_break: set[str]
) -> None:
    """Django's control: its own MySQL backend, persistent connections held by the parent. A
    child that exits (mysqlclient) or closes its connections (both drivers) kills them."""
    report = forkcheck(database_url, "--target", "django-stock", "--driver", driver_name)
    broken = {way for way, survived in report["survived"].items() if survived is not True}
    assert must_break <= broken, report
