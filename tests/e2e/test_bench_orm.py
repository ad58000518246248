"""``postfork bench --orm`` end to end, shortened: the SQLAlchemy and Django scenarios under real
uWSGI behind the real delay proxy, on a private MariaDB.

Checked is what each scenario must show by construction, not timings: stock pools connect on a
recycled worker's request and postfork never does; SQLAlchemy's QueuePool pings on checkout, the
stock Django default opens a connection per request; postfork's Django backend costs one
statement per request, postfork's SQLAlchemy pool two (the query and the rollback).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from postfork_tools.embedded import EmbeddedMariaDB

pytestmark = pytest.mark.bench_tool  # make test-bench: the bench tool end to end

POSTFORK = str(Path(sys.executable).parent / "postfork")
MAX_REQUESTS = 10


def bench_orm(out: Path, *options: str) -> dict[str, Any]:
    """``postfork bench --orm``, shortened, on a private MariaDB; its JSON report."""
    with EmbeddedMariaDB() as server:
        done = subprocess.run(
            [
                POSTFORK, "bench", "--orm", "--database-url", server.url.render_secret(),
                "--processes", "2", "--max-requests", str(MAX_REQUESTS), "--rate", "40",
                "--duration", "3", "--closed-duration", "1", "--json", str(out), *options,
            ],
            capture_output=True,
            text=True,
            timeout=400,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.read_text())
    return report


@pytest.fixture(scope="module")
def orm_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("django")
    pytest.importorskip("sqlalchemy")
    out = tmp_path_factory.mktemp("bench-orm") / "bench.json"
    return bench_orm(out, "--scenarios", "warm", "--no-storms")


@pytest.mark.timeout(480)
def test_every_orm_scenario_answers_every_request(orm_report: dict[str, Any]) -> None:
    assert list(orm_report["orm"]) == [
        "sqlalchemy",
        "sqlalchemy on postfork",
        "django",
        "django persistent",
        "django on postfork",
    ]
    for name, figures in orm_report["orm"].items():
        assert figures["errors"] == 0, name
        assert figures["closed_loop"]["errors"] == 0, name
        assert figures["respawns"] >= 2, name  # recycling happened in every scenario


def test_stock_pools_connect_on_the_request_path_and_postfork_never_does(
    orm_report: dict[str, Any],
) -> None:
    orm = orm_report["orm"]
    for stock in ("sqlalchemy", "django persistent"):
        assert orm[stock]["connects_on_request_path"] >= orm[stock]["respawns"] - 2, stock
    assert orm["django"]["connects_on_request_path"] == orm["django"]["requests"]
    for ours in ("sqlalchemy on postfork", "django on postfork"):
        assert orm[ours]["connects_on_request_path"] == 0, ours


def test_statements_per_request_show_what_each_pool_sends(orm_report: dict[str, Any]) -> None:
    """Per request, amortised over a worker's life: with max-requests 10 each new worker's
    session set-up (and postfork's warm-up request) adds about half a statement per request
    to every persistent scenario, which the margins allow for."""
    statements = {name: f["statements_per_request"] for name, f in orm_report["orm"].items()}
    # stock SQLAlchemy: the ping and the rollback on top of the query; postfork: the rollback
    assert statements["sqlalchemy"] > statements["sqlalchemy on postfork"] + 0.7
    # stock Django, persistent with health checks: the ping on top of the query
    assert statements["django persistent"] > statements["django on postfork"] + 0.5
    # the default: a new connection and its set-up statements on every request
    assert statements["django"] > statements["django persistent"] + 1


@pytest.fixture(scope="module")
def asgi_orm_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``--orm`` under uvicorn: the Django scenarios through Django's ASGI handler.

    uvicorn's supervisor takes a second or two to notice a worker that left and to spawn one that
    imports Django again, so each worker here lives two seconds (20 requests at 10 req/s), longer
    than its replacement takes: the run measures the pools, not a queue."""
    pytest.importorskip("django")
    out = tmp_path_factory.mktemp("bench-orm-asgi") / "bench.json"
    pace = ("--rate", "20", "--max-requests", "20", "--duration", "8")
    return bench_orm(out, "--server", "uvicorn", "--scenarios", "no-recycle", *pace)


@pytest.mark.timeout(480)
def test_under_uvicorn_the_django_scenarios_run_and_only_postfork_never_connects(
    asgi_orm_report: dict[str, Any],
) -> None:
    orm = asgi_orm_report["orm"]
    assert list(orm) == ["django", "django persistent", "django on postfork"]
    for name, figures in orm.items():
        assert figures["respawns"] >= 2, name  # uvicorn's --limit-max-requests recycled
        # A worker that reached --limit-max-requests closes the connections it accepted and had
        # not read yet (uvicorn's Server.shutdown): a bare ASGI app without any database loses
        # one or two per recycle too. Those are the only errors allowed: never an answer not 200.
        for loop in (figures, figures["closed_loop"]):
            assert loop["errors"] == loop["dropped"], name
    stock = orm["django"]
    assert stock["connects_on_request_path"] == stock["requests"] - stock["errors"]  # answered
    # under ASGI each request's thread keeps its own persistent connection: it connects too
    assert orm["django persistent"]["connects_on_request_path"] >= orm["django"]["respawns"]
    assert orm["django on postfork"]["connects_on_request_path"] == 0
