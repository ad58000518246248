"""Bounded waits against a silent database (real MariaDB behind postfork's forwarder, told to
hold every byte): ``postfork.deadline`` cuts a query off, checkouts and connects stay within
it, a lease outside it is never touched; TCP dead-peer detection is set on pooled sockets;
after a failure the pool is ``degraded`` and ``maintain(connect=False)`` does not connect."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest

import postfork
from postfork.pool.silence import PROBE_WAIT
from postfork.url import DatabaseURL
from postfork_tools.bench.delay_proxy import ProxyProcess, proxied, proxy_target


@pytest.fixture
def proxy(database_url: DatabaseURL) -> Iterator[ProxyProcess]:
    with ProxyProcess(proxy_target(database_url), 0.0) as running:
        yield running


def proxied_pool(
    database_url: DatabaseURL, proxy: ProxyProcess, driver: str, **options: object
) -> postfork.Pool:
    url = proxied(database_url, proxy.port)
    return postfork.Pool(url, driver=driver, connect_timeout=2, **options)  # type: ignore[arg-type]


def select_one(conn: object) -> object:
    cursor = conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("SELECT 1")
    return cursor.fetchall()[0][0]


def test_a_query_the_deadline_outlives_is_cut_off_and_its_connection_discarded(
    database_url: DatabaseURL, proxy: ProxyProcess, driver: str
) -> None:
    with proxied_pool(database_url, proxy, driver, min_idle=1, max_size=2) as pool:
        pool.warm()
        proxy.command("hold")
        started = time.monotonic()
        with (
            pytest.raises(Exception) as raised,
            postfork.deadline(0.5) as limit,
            pool.connection() as conn,
        ):
            select_one(conn)
        took = time.monotonic() - started
        assert 0.45 < took < 1.0, took
        assert limit.exceeded
        assert pool.is_disconnect(raised.value)  # the driver's own 2013
        assert pool.stats()["discards"]["error"] == 1 and pool.degraded
        started = time.monotonic()  # silent: a checkout that would connect fails fast
        with pytest.raises(postfork.DatabaseUnavailable, match="is not answering"):
            pool.connection().__enter__()
        assert time.monotonic() - started < PROBE_WAIT + 0.2
        proxy.command("flow")
        pool.maintain()  # what the upkeep's timer thread does in the background
        with pool.connection() as conn:  # answering again: the service is back at once
            assert select_one(conn) == 1
        assert not pool.degraded


def test_a_full_pool_waits_only_until_the_deadline(
    database_url: DatabaseURL, proxy: ProxyProcess, driver: str
) -> None:
    with (
        proxied_pool(database_url, proxy, driver, max_size=1, checkout_timeout=5) as pool,
        pool.connection(),
    ):
        started = time.monotonic()
        with (
            pytest.raises(postfork.DeadlineExceeded, match=r"deadline \(0.3s\)"),
            postfork.deadline(0.3),
            pool.connection(),
        ):
            pass
        assert time.monotonic() - started < 0.6


def test_a_connect_never_outlasts_the_deadline(
    database_url: DatabaseURL, proxy: ProxyProcess, driver: str
) -> None:
    """mysqlclient takes whole seconds: with 0.6 s left it does not start a connect that could
    take 1 s; PyMySQL connects with 0.6 s as its timeout."""
    with proxied_pool(database_url, proxy, driver, min_idle=0) as pool:
        proxy.command("hold")
        started = time.monotonic()
        with (
            pytest.raises((postfork.DeadlineExceeded, postfork.DatabaseUnavailable)) as raised,
            postfork.deadline(0.6),
            pool.connection(),
        ):
            pass
        took = time.monotonic() - started
        assert took < 0.8, took
        if driver == "mysqlclient":
            assert isinstance(raised.value, postfork.DeadlineExceeded)
            assert "no time left to open a connection" in str(raised.value)
        else:
            assert isinstance(raised.value, postfork.DatabaseUnavailable)
        proxy.command("flow")


def test_a_lease_that_outlives_its_deadline_block_is_not_cut_off(
    database_url: DatabaseURL, proxy: ProxyProcess, driver: str
) -> None:
    """A persistent connection (Django's CONN_MAX_AGE) is checked out inside one request's
    deadline and used in the next: the old deadline must not reach it."""
    with proxied_pool(database_url, proxy, driver) as pool:
        pool.warm()
        with postfork.deadline(0.2):
            lease = pool.connection()
            conn = lease.__enter__()
        time.sleep(0.4)
        assert select_one(conn) == 1
        lease.__exit__(None, None, None)


def test_a_deadline_that_passes_after_the_lease_ended_leaves_the_connection_alone(
    database_url: DatabaseURL, proxy: ProxyProcess, driver: str
) -> None:
    with proxied_pool(database_url, proxy, driver, min_idle=1) as pool:
        pool.warm()
        with postfork.deadline(0.2) as limit:
            with pool.connection() as conn:
                first = pool.stats()
                select_one(conn)
            time.sleep(0.4)
        assert not limit.exceeded
        with pool.connection() as conn:
            assert select_one(conn) == 1
        assert pool.stats()["connects"] == first["connects"]  # the same connection


def test_nested_deadlines_keep_the_earlier_one() -> None:
    with postfork.deadline(5) as outer:
        with postfork.deadline(0.1) as inner:
            assert inner.expires < outer.expires
        with postfork.deadline(10) as later:
            assert later is outer
    assert postfork.pool.current_deadline() is None


@pytest.mark.parametrize("seconds", [0, -1, "2", True, float("nan")])
def test_a_deadline_must_be_positive_seconds(seconds: object) -> None:
    with (
        pytest.raises(postfork.ConfigError, match="positive number of seconds"),
        postfork.deadline(seconds),  # type: ignore[arg-type]
    ):
        pass


def test_pooled_tcp_sockets_detect_a_dead_peer(
    database_url: DatabaseURL, proxy: ProxyProcess, driver: str
) -> None:
    with (
        proxied_pool(database_url, proxy, driver, dead_peer_timeout=8) as pool,
        pool.connection() as conn,
    ):
        sock = socket.socket(fileno=os.dup(pool._driver.fileno(conn)))
        try:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 4
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 8000
        finally:
            sock.close()
    with (
        proxied_pool(database_url, proxy, driver, dead_peer_timeout=0) as pool,
        pool.connection() as conn,
    ):
        sock = socket.socket(fileno=os.dup(pool._driver.fileno(conn)))
        try:
            # the drivers turn keepalive on themselves, with the OS's timings (2 hours)
            with open("/proc/sys/net/ipv4/tcp_keepalive_time") as os_default:
                idle = int(os_default.read())
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == idle
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 0
        finally:
            sock.close()


def test_after_a_failed_connect_upkeep_without_connect_opens_nothing(
    database_url: DatabaseURL, proxy: ProxyProcess, driver: str
) -> None:
    with proxied_pool(database_url, proxy, driver, min_idle=1) as pool:
        proxy.command("hold")
        with (
            pytest.raises(postfork.DatabaseUnavailable),
            postfork.deadline(1.5),
            pool.connection(),
        ):
            pass
        assert pool.degraded
        started = time.monotonic()
        pool.maintain(connect=False)  # what the after-response upkeep does now
        assert time.monotonic() - started < 0.1
        assert pool.stats()["idle"] == 0
        proxy.command("flow")
        pool.maintain()
        assert pool.stats()["idle"] == 1 and not pool.degraded


def test_a_sqlalchemy_engine_on_postfork_is_cut_off_at_the_deadline(
    database_url: DatabaseURL, proxy: ProxyProcess
) -> None:
    from sqlalchemy import exc, text

    from postfork.sqlalchemy import create_engine, engine_url

    url = engine_url(proxied(database_url, proxy.port))
    engine = create_engine(url, install=False, pool_size=1, connect_timeout=2)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
        # the ROLLBACK sent on return: its reply through the proxy before it holds (else the
        # next checkout waits for that reply instead, until the deadline: DeadlineExceeded)
        (idle,) = engine.pool.postfork_pool._idle  # type: ignore[attr-defined]
        assert idle.poller.poll(2000)
        proxy.command("hold")
        started = time.monotonic()
        with (
            pytest.raises(exc.OperationalError, match="2013"),
            postfork.deadline(0.5) as limit,
            engine.connect() as conn,
        ):
            conn.execute(text("SELECT 1"))
        assert time.monotonic() - started < 1.0 and limit.exceeded
        proxy.command("flow")
    finally:
        engine.dispose()
