"""Bad configuration and unreachable servers: the right error, quickly, and no password."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from postfork import ConfigError, DatabaseUnavailable, DatabaseURL, Pool, PoolTimeout

SECRET = "Wr0ng-S3cret-pw"


def with_password(url: DatabaseURL, password: str = SECRET, **changes: object) -> str:
    from dataclasses import replace

    return replace(url, password=password, **changes).render_secret()  # type: ignore[arg-type]


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts and then never sends the MySQL greeting."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


def assert_unavailable(
    url: str, driver: str, expect: str, caplog: pytest.LogCaptureFixture, **pool_args: float
) -> DatabaseUnavailable:
    pool = Pool(url, driver=driver, min_idle=1, **pool_args)  # type: ignore[arg-type]
    started = time.monotonic()
    with (
        caplog.at_level(logging.DEBUG, logger="postfork"),
        pytest.raises(DatabaseUnavailable) as info,
    ):
        pool.warm()
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert expect in message, message
    for text in (message, repr(info.value), repr(pool), str(pool.stats()), caplog.text):
        assert SECRET not in text
    return info.value


def test_wrong_password(
    database_url: DatabaseURL, driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    error = assert_unavailable(with_password(database_url), driver, "access denied", caplog)
    assert error.code == 1045 and database_url.target in str(error)


def test_unknown_database(
    database_url: DatabaseURL, driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = with_password(database_url, database_url.password, database="no_such_db_postfork")
    error = assert_unavailable(url, driver, "unknown database", caplog)
    assert error.code == 1049 and "no_such_db_postfork" in str(error)


def test_refused_port(driver: str, caplog: pytest.LogCaptureFixture) -> None:
    port = closed_port()
    url = f"mysql://root:{SECRET}@127.0.0.1:{port}/test"
    error = assert_unavailable(url, driver, "connection refused", caplog)
    assert f"127.0.0.1:{port}" in str(error)


def test_missing_unix_socket(
    driver: str, caplog: pytest.LogCaptureFixture, tmp_path: object
) -> None:
    url = f"mysql://root:{SECRET}@localhost/test?unix_socket={tmp_path}/none.sock"
    assert_unavailable(url, driver, "unix socket", caplog)


def test_server_that_never_answers_times_out_within_connect_timeout(
    silent_listener: int, driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"mysql://root:{SECRET}@127.0.0.1:{silent_listener}/test"
    started = time.monotonic()
    assert_unavailable(url, driver, f"127.0.0.1:{silent_listener}", caplog, connect_timeout=1)
    assert time.monotonic() - started < 3


def test_malformed_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid port"):
        Pool(f"mysql://root:{SECRET}@127.0.0.1:port/test")


def test_exhausted_pool_times_out_naming_the_limit(database_url: DatabaseURL, driver: str) -> None:
    with (
        Pool(database_url, driver=driver, max_size=1, checkout_timeout=0.2) as pool,
        pool.connection(),
    ):
        started = time.monotonic()
        with pytest.raises(PoolTimeout, match=r"max_size=1"), pool.connection():
            pass
        assert time.monotonic() - started < 2


def test_cli_reports_bad_credentials_in_one_line_without_the_password(
    database_url: DatabaseURL,
) -> None:
    env = {**os.environ, "DATABASE_URL": with_password(database_url)}
    result = subprocess.run(
        [sys.executable, "-m", "postfork.cli", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("postfork: error: cannot connect")
