"""The command line: embedded server lifecycle and the demo, as a user runs them."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


@pytest.mark.private_server
def test_db_start_replicas_starts_a_replicating_set_and_stop_removes_it(tmp_path: Path) -> None:
    env = {**os.environ, "POSTFORK_STATE_DIR": str(tmp_path)}
    started = postfork("db", "start", "--replicas", "2", env=env)
    assert started.returncode == 0, started.stderr
    lines = dict(line.split("=", 1) for line in started.stdout.split())
    primary = parse_url(lines["DATABASE_URL"])
    replicas = [parse_url(url) for url in lines["POSTFORK_REPLICA_URLS"].split(",")]
    try:
        assert len(replicas) == 2
        admin_query(primary, "CREATE TABLE postfork.cli_check (id INT PRIMARY KEY)")
        admin_query(primary, "INSERT INTO postfork.cli_check VALUES (7)")
        for replica in replicas:  # replicating: the row arrives
            position = admin_query(primary, "SELECT @@gtid_binlog_pos")[0][0]
            assert admin_query(replica, f"SELECT MASTER_GTID_WAIT('{position}', 10)") == [(0,)]
            assert admin_query(replica, "SELECT id FROM postfork.cli_check") == [(7,)]
        again = postfork("db", "start", "--replicas", "2", env=env)
        assert again.stdout == started.stdout  # idempotent: the same set
        other = postfork("db", "start", "--replicas", "3", env=env)
        assert other.returncode == 2 and "stop it first" in other.stderr
        state = json.loads((tmp_path / "replicas.json").read_text())
        os.kill(state["servers"][0]["pid"], signal.SIGKILL)  # the primary dies
        time.sleep(0.5)
        again = postfork("db", "start", "--replicas", "2", env=env)
        assert again.returncode == 2 and "is down" in again.stderr
    finally:
        stopped = postfork("db", "stop", env=env)  # still finds the replicas, stops them
    assert stopped.returncode == 0, stopped.stderr
    assert not any(Path(str(url.unix_socket)).exists() for url in (primary, *replicas))


def test_doctor_budget_adds_up_the_deployment_against_the_account_and_server_limits(
    private_server: Any,
) -> None:
    server = private_server(["--max-connections=40"])
    server.execute("CREATE USER 'app'@'localhost' IDENTIFIED BY 'app-secret'")
    server.execute("GRANT SELECT ON postfork.* TO 'app'@'localhost' WITH MAX_USER_CONNECTIONS 30")
    url = dataclasses.replace(server.url, user="app", password="app-secret")
    env = {**os.environ, "DATABASE_URL": url.render_secret()}
    fits = postfork("doctor", "budget", "--processes", "4", "--max-size", "2", env=env)
    assert fits.returncode == 0, fits.stderr
    assert "max_connections 40, max_user_connections 30" in fits.stdout
    assert "peak 8 (1 x 4 x 2) of 30: headroom 22" in fits.stdout
    assert "app-secret" not in fits.stdout + fits.stderr
    over = postfork("doctor", "budget", "--hosts", "2", "--processes", "8", env=env)
    assert over.returncode == 1
    assert "peak 64 (2 x 8 x 4) of 30: OVER by 34" in over.stdout
    recycling = postfork(
        "doctor", "budget", "--processes", "6", "--max-size", "4", "--min-idle", "4",
        "--max-requests", "100", env=env,
    )  # fmt: skip
    assert recycling.returncode == 1
    assert "while recycling up to 48: WARNING, over 30 by 18" in recycling.stdout


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


def test_daphne_with_workers_or_recycling_is_refused_with_the_way_out(
    database_url: DatabaseURL,
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url.render_secret()}
    result = postfork("serve", "--server", "daphne", env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "daphne serves from one process and never recycles it: use --processes 1" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


@pytest.mark.private_server
def test_a_starting_private_server_leaves_the_running_ones_temporary_tables_alone(
    tmp_path: Path,
) -> None:
    """A starting mariadbd deletes every ``#sql*`` file in its tmpdir: with /tmp shared, a
    server started beside a running one (a replica set, a test's own) removed the running
    one's on-disk temporary tables, and its queries failed (seen as "Error on delete of
    '/tmp/#sql-temptable-...'"). Each embedded server has a tmpdir of its own."""
    from postfork_tools.embedded import EmbeddedMariaDB

    with EmbeddedMariaDB(tmp_path / "running") as running:
        in_use = running.tmpdir / "#sql-temptable-in-use.MAI"
        in_use.write_bytes(b"")
        with EmbeddedMariaDB(tmp_path / "starting"):
            assert in_use.exists()
        assert running.execute("SELECT @@tmpdir")[0][0] == str(running.tmpdir)
