"""Idle connections that the server drops (a short wait_timeout) or kills (KILL) under real
uWSGI with recycling: after every idle gap, every request succeeds; dead connections are
found without a failed request."""

from __future__ import annotations

import time

from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import ServiceProcess, free_port, get
from tests.conftest import PrivateServerFactory

from .conftest import seed_server


def burst(port: int, count: int = 12) -> list[int]:
    return [get(port, f"/v1/accounts/{i % 50 + 1}/summary").status for i in range(count)]


def sessions(db: EmbeddedMariaDB, user: str = "root") -> list[int]:
    rows = db.execute(
        "SELECT ID FROM information_schema.PROCESSLIST "
        f"WHERE USER = '{user}' AND COMMAND = 'Sleep' AND ID <> CONNECTION_ID()"
    )
    return [int(row[0]) for row in rows]


def test_short_wait_timeout_and_killed_idle_sessions_cost_no_request(
    private_server: PrivateServerFactory,
) -> None:
    db = private_server(["--wait-timeout=2"])
    seed_server(db)
    options = ServeOptions(processes=2, max_requests=7, bind=f"127.0.0.1:{free_port()}")
    with ServiceProcess(db.url, options) as service:
        assert set(burst(service.port)) == {200}
        for _ in range(2):  # idle gaps longer than wait_timeout: the server drops the sessions
            time.sleep(3.0)
            assert set(burst(service.port)) == {200}
        idle = sessions(db)
        assert idle  # the workers' pooled sessions
        for session in idle:  # the server kills every idle session
            db.execute(f"KILL {session}")
        deadline = time.monotonic() + 5  # KILL returns before the session is gone
        while set(idle) & set(sessions(db)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(burst(service.port)) == {200}
        log = service.log()
    assert "status=503" not in log and "Traceback" not in log
