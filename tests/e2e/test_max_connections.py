"""The server's max_connections is exhausted (private MariaDB, real uWSGI): the service answers
a clear JSON 503 quickly, says why in its log, and recovers by itself once connections free up."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from postfork import DatabaseUnavailable, DatabaseURL
from postfork.drivers import connect
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import ServiceProcess, free_port, get
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


def test_each_worker_holds_one_session_under_load(private_server: PrivateServerFactory) -> None:
    """What `postfork doctor budget` counts for a worker serving one request at a time: one
    session. The upkeep timer waking mid-request used to open a spare beside the leased
    connection (4 workers held 7 sessions after 10 s of load)."""

    server = private_server()
    seed_server(server)
    processes = 4
    options = ServeOptions(processes=processes, max_requests=0, bind=f"127.0.0.1:{free_port()}")

    def sessions() -> int:  # the server's sessions, less the one asking
        return int(server.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")[0][1]) - 1

    with ServiceProcess(server.url, options) as service:
        stop = time.monotonic() + 4.0
        statuses: list[int] = []

        def load() -> None:
            turn = 0
            while time.monotonic() < stop:
                statuses.append(get(service.port, f"/v1/accounts/{turn % 50 + 1}/summary").status)
                turn += 1

        clients = [threading.Thread(target=load) for _ in range(processes)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        assert statuses and set(statuses) == {200}
        assert sessions() == processes
