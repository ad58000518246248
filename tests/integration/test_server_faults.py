"""Faults that need a server of our own: KILLed idle sessions and a short wait_timeout."""

from __future__ import annotations

import time
from typing import Any

import MySQLdb
import pytest

from postfork import Pool

from ..conftest import PrivateServerFactory
from .conftest import admin_query

pytestmark = pytest.mark.private_server


def server_log(url: Any, ids: list[int]) -> list[tuple[int, str, str]]:
    marks = ",".join(str(int(i)) for i in ids)
    rows = admin_query(
        url,
        "SELECT thread_id, command_type, CONVERT(argument USING utf8mb4) "
        f"FROM mysql.general_log WHERE thread_id IN ({marks}) ORDER BY event_time",
    )
    return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


def test_killed_idle_connections_are_skipped_with_zero_round_trips(
    private_server: PrivateServerFactory, driver: str
) -> None:
    server = private_server(["--general-log=1", "--log-output=TABLE"])
    url = server.url
    with Pool(url, driver=driver, min_idle=3, max_size=3) as pool:
        pool.warm()
        leases = [pool.connection() for _ in range(3)]
        ids = [int(lease.__enter__().thread_id()) for lease in leases]
        for lease in reversed(leases):
            lease.__exit__(None, None, None)  # LIFO: ids[0] is now on top of the stack
        for victim in ids[:2]:
            admin_query(url, f"KILL {victim}")
        time.sleep(0.1)
        logged_before = len(server_log(url, ids))
        for _ in range(5):
            with pool.connection() as conn:  # no error reaches the caller
                assert int(conn.thread_id()) == ids[2]
        stats = pool.stats()
        # the checks above sent nothing to the survivor: no ping, no SELECT 1, no rollback
        assert server_log(url, ids)[logged_before:] == []
    assert stats["discards"]["stale"] == 2 and stats["connects"] == 3


def test_short_wait_timeout_retires_connections_before_the_server_drops_them(
    private_server: PrivateServerFactory, driver: str
) -> None:
    server = private_server(["--wait-timeout=2"])
    url = server.url
    raw = MySQLdb.connect(unix_socket=url.unix_socket, user="root")
    with Pool(url, driver=driver, min_idle=1, max_size=2) as pool:
        pool.warm()
        # 1.8 s: past the connection's lifetime (1.44-1.6 s), before the server's 2 s;
        # 2.5 s: past the server's wait_timeout too. Neither may surface as an error.
        for gap in (1.8, 1.8, 2.5):
            time.sleep(gap)
            with pool.connection() as conn:
                cursor = conn.cursor()
                cursor.execute("SELECT 1")
                assert cursor.fetchone() == (1,)
        stats = pool.stats()
    assert stats["discards"]["lifetime"] == 3 and stats["discards"]["stale"] == 0
    assert stats["discards"]["error"] == 0
    # the control: a plain connection idle as long was dropped by the server
    with pytest.raises(MySQLdb.OperationalError) as info:
        raw.cursor().execute("SELECT 1")
    assert info.value.args[0] in (2006, 2013, 4031)


def test_maintain_replaces_retiring_connections_so_checkouts_pay_no_connect(
    private_server: PrivateServerFactory, driver: str
) -> None:
    server = private_server(["--wait-timeout=2"])
    with Pool(server.url, driver=driver, min_idle=1, max_size=1, lifetime_jitter=0) as pool:
        pool.warm()
        time.sleep(1.5)  # lifetime 1.6 s: inside maintain()'s refresh window
        pool.maintain()
        lease = pool.connection()
        with lease:
            pass
        assert not lease.paid_connect
        assert pool.stats()["discards"]["lifetime"] == 1
