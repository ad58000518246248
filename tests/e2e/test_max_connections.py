"""The server's max_connections is exhausted (private MariaDB, real uWSGI): the service answers
a clear JSON 503 quickly, says why in its log, and recovers by itself once connections free up."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from postfork import DatabaseUnavailable, DatabaseURL
from postfork.drivers import connect
from postfork.tools.serve.command import ServeOptions
from postfork.tools.serve.runner import ServiceProcess, free_port, get
from tests.conftest import PrivateServerFactory

from .conftest import seed_server

MAX_CONNECTIONS = 10  # the smallest value MariaDB accepts


def fill_up(url: DatabaseURL) -> list[Any]:
    """Open connections until the server refuses one (its exact allowance has an off-by-one
    that depends on the version)."""
    held: list[Any] = []
    while len(held) < 2 * MAX_CONNECTIONS:
        try:
            held.append(connect(url, timeout=5))
        except DatabaseUnavailable as exc:
            assert exc.code == 1040, exc  # ER_CON_COUNT_ERROR: Too many connections
            return held
    raise AssertionError("max_connections was never reached")


def test_exhausted_max_connections_is_a_quick_503_and_recovers(
    private_server: PrivateServerFactory,
) -> None:
    server = private_server([f"--max-connections={MAX_CONNECTIONS}"])
    seed_server(server)
    # a user without SUPER: MariaDB keeps one connection beyond the limit for SUPER users
    server.execute("CREATE USER 'app'@'localhost' IDENTIFIED BY 'app-pw'")
    server.execute("GRANT SELECT ON postfork.* TO 'app'@'localhost'")
    url = dataclasses.replace(server.url, user="app", password="app-pw")
    holders = fill_up(url)
    assert MAX_CONNECTIONS <= len(holders) <= MAX_CONNECTIONS + 1
    try:
        options = ServeOptions(processes=1, max_requests=50, bind=f"127.0.0.1:{free_port()}")
        with ServiceProcess(url, options) as service:
            assert get(service.port, "/readyz").status == 503  # could not warm: not ready
            started = time.monotonic()
            response = get(service.port, "/v1/accounts/1/summary")
            assert time.monotonic() - started < 3  # within the connect/checkout timeouts
            assert response.status == 503
            assert response.headers["retry-after"] == "1"
            assert response.body == {"error": "database unavailable, retry shortly"}
            for holder in holders:
                holder.close()
            holders = []
            deadline = time.monotonic() + 2
            while get(service.port, "/v1/accounts/1/summary").status != 200:
                assert time.monotonic() < deadline, "no recovery within 2 s"
                time.sleep(0.05)
            assert get(service.port, "/readyz").status == 200
            log = service.log()
        assert "Too many connections" in log
        assert "Traceback" not in log
    finally:
        for holder in holders:
            holder.close()
