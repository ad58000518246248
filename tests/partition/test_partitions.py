"""The dead-peer defences against real kernel behaviour: a server in a network namespace whose
packets nftables drops (tests/netpartition.py), not a forwarder that plays dead. Every bound
asserted here is derived from the timeout configured for it."""

from __future__ import annotations

import select
import threading
import time
from typing import Any

import MySQLdb
import pytest

from postfork import Cluster, DatabaseUnavailable, Pool, deadline
from postfork.pool.tcp import KEEPALIVE_PROBES
from postfork.topology import Health
from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.replication import EmbeddedReplicaSet, wait_until

from ..netpartition import Namespace
from .conftest import tcp_url

pytestmark = [pytest.mark.timeout(180), pytest.mark.private_server]

DEAD_PEER = 2.0  # dead_peer_timeout: keepalive after 1 s idle, then a probe a second
PROBE = max(1.0, int((DEAD_PEER - max(1, int(DEAD_PEER / 2))) / KEEPALIVE_PROBES))
CONNECT = 1.0  # connect_timeout
SLACK = 0.5  # scheduling, on top of a bound's own timeout


def port_of(conn: Any) -> int:
    cursor = conn.cursor()
    cursor.execute("SELECT @@port")
    return int(cursor.fetchone()[0])


def pending_events(conn: Any) -> int:
    """What poll() says about the connection's socket right now (0: nothing; idle and fine,
    as far as the kernel knows)."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    return sum(event for _, event in poller.poll(0))


def test_an_idle_connection_to_a_vanished_server_is_found_dead_and_never_handed_out(
    namespace: Namespace, far_url: Any
) -> None:
    """The pool's idle connection, with TCP keepalive and TCP_USER_TIMEOUT set from
    dead_peer_timeout, is aborted by the kernel within that bound; the zero-round-trip check
    at checkout sees it and does not hand it out. The control, a driver connection with the
    OS's keepalive (2 hours), still looks idle and healthy after the same wait."""
    pool = Pool(far_url, min_idle=1, max_size=1, dead_peer_timeout=DEAD_PEER,
                connect_timeout=CONNECT, checkout_timeout=CONNECT + SLACK)  # fmt: skip
    control = MySQLdb.connect(host=far_url.host, port=far_url.port, user=far_url.user,
                              connect_timeout=1, read_timeout=1)  # fmt: skip
    try:
        assert pool.warm() == 1
        namespace.drop()
        time.sleep(DEAD_PEER + PROBE + SLACK)  # the kernel's verdict is due by then
        assert pending_events(control) == 0  # a plain pool would hand this one out
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable), pool.connection():
            pass  # the dead one is discarded; a new connect cannot get through
        assert time.monotonic() - started < CONNECT + SLACK  # no read wait on a dead socket
        stats = pool.stats()
        assert stats["discards"]["stale"] == 1 and stats["connect_errors"] >= 1, stats
        namespace.heal()
        pool.maintain()  # what the upkeep does: the silence breaker reconnects off the request
        with pool.connection() as conn:
            assert port_of(conn) == 3306
    finally:
        namespace.heal()
        control.close()
        pool.close()


@pytest.mark.parametrize("direction", ["both", "in", "out"])
def test_a_query_in_flight_to_a_vanished_server_is_cut_at_the_deadline(
    namespace: Namespace, far_url: Any, direction: str
) -> None:
    """Requests lost on the way in, answers lost on the way out, or both: the request's
    deadline ends the wait (the watchdog cuts the query: the driver's 2013, the deadline
    marked exceeded), and the connection is discarded, not returned."""
    limit = 1.0
    with Pool(far_url, min_idle=1, max_size=1, connect_timeout=CONNECT) as pool:
        pool.warm()
        namespace.drop(direction=direction)
        started = time.monotonic()
        with (
            pytest.raises(MySQLdb.OperationalError, match="2013"),
            deadline(limit) as bound,
            pool.connection() as conn,
        ):
            port_of(conn)
        assert time.monotonic() - started < limit + SLACK
        assert bound.exceeded
        assert pool.stats()["discards"]["error"] == 1
        namespace.heal()
        pool.maintain()
        with pool.connection() as conn:
            assert port_of(conn) == 3306


def test_new_sessions_dropped_live_ones_serve_and_a_connect_ends_at_its_timeout(
    namespace: Namespace, far_url: Any
) -> None:
    """A lost NAT entry for new flows, or a listener's host half gone: the SYN goes
    unanswered. The live session keeps serving; the connect for a second one gives up at
    connect_timeout, with an error that says so."""
    with Pool(far_url, min_idle=1, max_size=2, connect_timeout=CONNECT,
              checkout_timeout=CONNECT + SLACK) as pool:  # fmt: skip
        pool.warm()
        namespace.drop(sessions="new")
        with pool.connection() as live:
            assert port_of(live) == 3306
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable) as raised, pool.connection():
                pass
            assert time.monotonic() - started < CONNECT + SLACK
            assert port_of(live) == 3306
        assert "timed out" in str(raised.value) or "Can't connect" in str(raised.value), raised


def test_a_partitioned_replica_is_left_within_one_check_and_taken_back_after(
    namespace: Namespace, far_replicas: EmbeddedReplicaSet
) -> None:
    """One replica cut off from its clients (its replication goes on), reads from two threads
    under a 2 s deadline: the replica is left within one check (which probes on an idle
    connection: min_idle 3 for 2 readers; a member whose connections are all stuck in requests
    is left when their deadline cuts them); a read caught in flight on it at the cut ends at
    its deadline, every read sent after it left is answered elsewhere at once; it is taken
    back once the link heals."""
    check, check_timeout, limit = 0.2, 0.5, 2.0
    cut = far_replicas.replicas[0]
    cluster = Cluster(
        far_replicas.primary.url,
        [tcp_url(namespace.inside, replica.port) for replica in far_replicas.replicas],
        check_interval=check, check_timeout=check_timeout, max_replica_lag=2.0,
        connect_timeout=CONNECT, dead_peer_timeout=DEAD_PEER, min_idle=3, max_size=4,
        autocommit=True,
    )  # fmt: skip
    member = next(m for m in cluster.members if m.name.endswith(f":{cut.port}"))
    reads: list[tuple[float, float, int | str]] = []  # sent at, seconds, port or error
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                with deadline(limit):
                    outcome: int | str = cluster.read(port_of)
            except Exception as exc:  # recorded: the assertions judge it
                outcome = type(exc).__name__
            reads.append((sent, time.monotonic() - sent, outcome))

    def upkeep() -> None:
        while not stop.is_set():
            cluster.maintain()
            time.sleep(0.05)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    threads.append(threading.Thread(target=upkeep))
    try:
        cluster.warm()
        assert member.serves
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        namespace.drop(port=cut.port)
        cut_at = time.monotonic()
        wait_until(lambda: not member.serves, check + check_timeout + SLACK, "the replica left")
        left_at = time.monotonic()
        after = {cluster.read(port_of) for _ in range(10)}  # sent now, from this thread
        time.sleep(max(0.0, cut_at + limit + SLACK - time.monotonic()))  # stuck ones: cut
        namespace.heal()
        wait_until(lambda: member.serves, DEAD_PEER + CONNECT + 2 * check + SLACK, "taken back")
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        namespace.heal()
        cluster.close()
    assert left_at - cut_at < check + check_timeout + SLACK
    assert after == {far_replicas.replicas[1].port}, after
    assert max(seconds for _, seconds, _ in reads) < limit + SLACK
    caught = [read for read in reads if not isinstance(read[2], int)]
    assert all(sent < left_at for sent, _, _ in caught), caught  # in flight at the cut only
    assert {outcome for _, _, outcome in caught} <= {"DeadlineExceeded", "OperationalError"}
    assert member.health is Health.UP


def test_the_namespace_server_is_really_cut_off(
    namespace: Namespace, far_server: EmbeddedMariaDB, far_url: Any
) -> None:
    """The fixture itself: with the drop, a connect times out (nothing refuses it); healed,
    it connects. Without this, every test above could pass against a server never cut."""
    namespace.drop()
    started = time.monotonic()
    with pytest.raises(MySQLdb.OperationalError, match=r"2002|2003|2013"):
        MySQLdb.connect(host=far_url.host, port=far_url.port, user=far_url.user,
                        connect_timeout=1)  # fmt: skip
    assert time.monotonic() - started >= 1.0  # waited: dropped, not refused
    namespace.heal()
    MySQLdb.connect(host=far_url.host, port=far_url.port, user=far_url.user).close()
