"""Fork matrix on a real server: the parent's sessions survive every child, both drivers,
both fork paths (os.fork with Python's at-fork hooks; libc fork without them, as in uWSGI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from postfork import DatabaseURL
from postfork._forkcheck import EXIT_WAYS

ROUNDS = 5


def forkcheck(url: DatabaseURL, *args: str) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": url.render_secret()}
    result = subprocess.run(
        [sys.executable, "-m", "postfork._forkcheck", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("fork", ["os", "libc"])
def test_parent_sessions_survive_children_leaving_in_every_way(
    database_url: DatabaseURL, driver: str, fork: str
) -> None:
    report = forkcheck(database_url, "--driver", driver, "--fork", fork, "--rounds", str(ROUNDS))
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
