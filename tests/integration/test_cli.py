"""The command line: embedded server lifecycle and the demo, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from postfork import DatabaseURL, parse_url

from .conftest import admin_query


def postfork(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postfork.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.private_server
def test_db_start_url_stop_manage_one_private_server(tmp_path: Path) -> None:
    env = {**os.environ, "POSTFORK_STATE_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    assert postfork("db", "url", env=env).returncode == 1
    started = postfork("db", "start", env=env)
    assert started.returncode == 0, started.stderr
    url = parse_url(started.stdout.strip())
    try:
        assert url.unix_socket and url.database == "postfork"
        assert admin_query(url, "SELECT 1") == [(1,)]
        again = postfork("db", "start", env=env)  # idempotent: same server
        assert again.stdout == started.stdout
        assert postfork("db", "url", env=env).stdout == started.stdout
    finally:
        stopped = postfork("db", "stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert not Path(url.unix_socket).exists()
    assert postfork("db", "url", env=env).returncode == 1


def test_demo_shows_the_bug_and_the_fix(database_url: DatabaseURL) -> None:
    env = {**os.environ, "DATABASE_URL": database_url.render_secret()}
    result = postfork("demo", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("BROKEN") == 2  # the raw drivers, without postfork
    assert out.count("unchanged") == 4 and "CHANGED" not in out
    assert "every parent session survived every child" in out


def test_unknown_command_line_options_fail_with_usage() -> None:
    result = postfork("demo", "--no-such-flag", env=dict(os.environ))
    assert result.returncode == 2 and "usage:" in result.stderr
