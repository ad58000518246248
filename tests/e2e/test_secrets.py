"""A password in the database URL never shows up anywhere: not in any HTTP response (including
/healthz, /readyz, /metrics and errors), not in the server's log (with the database up, down,
or refusing the password), not in the CLI's output."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from postfork import DatabaseURL
from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import ServiceProcess, free_port, get

from .conftest import seed_server

PASSWORD = "Pf-s3cret-7391"
WRONG = "Wr0ng-pass-5528"
POSTFORK = str(Path(sys.executable).parent / "postfork")


@pytest.fixture(scope="module")
def secret_db() -> Iterator[tuple[EmbeddedMariaDB, DatabaseURL]]:
    with EmbeddedMariaDB() as server:
        seed_server(server)
        server.execute(f"CREATE USER 'app'@'localhost' IDENTIFIED BY '{PASSWORD}'")
        server.execute("GRANT ALL ON postfork.* TO 'app'@'localhost'")
        yield server, dataclasses.replace(server.url, user="app", password=PASSWORD)


def everything_said(port: int) -> str:
    """Every response (status line, headers, body) of every endpoint, good and bad input."""
    said = []
    for method, path in [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/v1/accounts/1/summary"),
        ("GET", "/v1/accounts/1/orders?limit=3"),
        ("GET", "/v1/accounts/999999/summary"),
        ("GET", "/v1/accounts/x'%20OR%201=1/summary"),
        ("GET", "/v1/accounts/1/orders?limit=0"),
        ("POST", "/v1/accounts/1/summary"),
        ("GET", "/nowhere"),
    ]:
        response = get(port, path, method=method)
        said.append(f"{response.status} {response.headers} {response.body}")
    return "\n".join(said)


def test_no_response_or_log_line_contains_the_password(
    secret_db: tuple[EmbeddedMariaDB, DatabaseURL],
) -> None:
    server, url = secret_db
    options = ServeOptions(processes=2, max_requests=5, bind=f"127.0.0.1:{free_port()}")
    with ServiceProcess(url, options) as service:
        said = everything_said(service.port) + everything_said(service.port)
        assert "200 " in said and "503 " not in said
        server.terminate()  # the database goes away: 503s, warnings in the log
        try:
            down = everything_said(service.port)
        finally:
            server.start()
        log = service.log()
    assert "503 " in down
    assert PASSWORD not in said + down
    assert PASSWORD not in log
    assert "Traceback" not in said + down


def test_a_refused_password_is_not_repeated(
    secret_db: tuple[EmbeddedMariaDB, DatabaseURL],
) -> None:
    _, url = secret_db
    wrong = dataclasses.replace(url, password=WRONG)
    options = ServeOptions(processes=1, max_requests=5, bind=f"127.0.0.1:{free_port()}")
    with ServiceProcess(wrong, options) as service:  # starts: not ready, says why
        said = everything_said(service.port)
        log = service.log()
    assert "Access denied" in log
    assert "503 " in said
    for secret in (WRONG, PASSWORD):
        assert secret not in said + log


@pytest.mark.parametrize(
    "args",
    [
        ["db", "seed"],
        ["doctor"],
        ["bench", "--no-storms", "--scenarios", "warm", "--duration", "1"],
    ],
)
def test_the_cli_never_prints_it(
    secret_db: tuple[EmbeddedMariaDB, DatabaseURL], args: list[str]
) -> None:
    _, url = secret_db
    wrong = dataclasses.replace(url, password=WRONG).render_secret()
    done = subprocess.run(
        [POSTFORK, *args, "--database-url", wrong],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Access denied" in done.stderr
    assert WRONG not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
