"""postfork.Cluster on a real three-node Galera cluster (galera-4, rsync state transfer), all
on loopback: reads spread over Synced nodes, writes on one; a node that leaves the cluster (its
server still running and answering) is left; a node desynced as a donor is left and taken back;
a certification conflict is reported, never retried. The control (a plain pool on the leaving
node) must fail."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import postfork
from postfork import Cluster, Pool
from postfork.topology import Health
from postfork_tools.galera import EmbeddedGaleraCluster
from postfork_tools.replication import wait_until

pytestmark = pytest.mark.timeout(300)

CHECK = 0.2


@pytest.fixture(scope="module")
def galera() -> Iterator[EmbeddedGaleraCluster]:
    with EmbeddedGaleraCluster(3) as nodes:
        nodes.nodes[0].execute(
            "CREATE TABLE postfork.counters (id INT PRIMARY KEY, value INT NOT NULL)"
        )
        nodes.nodes[0].execute("INSERT INTO postfork.counters VALUES (1, 0), (2, 0)")
        yield nodes


@pytest.fixture
def cluster(galera: EmbeddedGaleraCluster) -> Iterator[Cluster]:
    topology = Cluster(
        galera=galera.urls, check_interval=CHECK, autocommit=True, connect_timeout=2.0
    )
    topology.warm()
    yield topology
    topology.close()


def port_of(conn: Any) -> int:
    """A read of the table (a node out of the cluster still answers ``SELECT @@port``)."""
    cursor = conn.cursor()
    cursor.execute("SELECT @@port FROM postfork.counters WHERE id = 1")
    return int(cursor.fetchone()[0])


def read_ports(cluster: Cluster, count: int = 9) -> set[int]:
    return {cluster.read(port_of) for _ in range(count)}


def test_reads_spread_over_the_synced_nodes_and_writes_go_to_one(
    galera: EmbeddedGaleraCluster, cluster: Cluster
) -> None:
    assert read_ports(cluster) == {node.port for node in galera.nodes}
    with cluster.writer() as conn:
        assert port_of(conn) == galera.nodes[0].port


def test_with_writes_flowing_reads_still_spread_over_every_synced_node(
    galera: EmbeddedGaleraCluster, cluster: Cluster
) -> None:
    """One thread serves a writing request, then a reading one, as a sync worker does: the
    write's read-your-writes window ends with its request, so the reads spread as before."""
    seen: Counter[int] = Counter()
    for _ in range(30):
        with cluster.writer() as conn:
            conn.cursor().execute("UPDATE postfork.counters SET value = value + 1 WHERE id = 2")
        assert cluster.read(port_of) == galera.nodes[0].port  # the same request: its writer
        postfork.after_response()  # what every server's hook calls once a response is sent
        seen[cluster.read(port_of)] += 1  # the next request, a reader
        postfork.after_response()
    assert set(seen) == {node.port for node in galera.nodes}, seen


def test_a_node_that_leaves_the_cluster_is_left_without_a_failed_read_and_taken_back(
    galera: EmbeddedGaleraCluster, cluster: Cluster
) -> None:
    leaving = galera.nodes[2]
    with Pool(leaving.url, min_idle=1, autocommit=True) as plain:
        leaving.execute("SET GLOBAL wsrep_cluster_address = ''")  # out; the server runs on
        try:
            wait_until(lambda: leaving.status().get("wsrep_ready") == "OFF", 30, "node3 left")
            with pytest.raises(Exception, match="1047"), plain.connection() as conn:
                port_of(conn)  # the control: "WSREP has not yet prepared node..."
            errors: list[BaseException] = []
            for _ in range(30):  # before and after the next check: no read fails
                try:
                    cluster.read(port_of)
                except Exception as exc:
                    errors.append(exc)
                cluster.maintain()
            assert errors == []
            assert leaving.port not in read_ports(cluster)
            member = next(m for m in cluster.members if m.name == str(leaving.socket))
            assert member.health in (Health.NOT_SYNCED, Health.DOWN), member.describe()
        finally:
            leaving.execute(
                f"SET GLOBAL wsrep_cluster_address = '{galera.address(without=leaving)}'"
            )
        wait_until(leaving.synced, 60, "node3 synced again")
    wait_until(lambda: (cluster.maintain(), member.serves)[1], 5, "node3 taken back")
    assert read_ports(cluster, 12) == {node.port for node in galera.nodes}


def test_a_desynced_donor_is_left_within_one_check_and_taken_back(
    galera: EmbeddedGaleraCluster, cluster: Cluster
) -> None:
    donor = galera.nodes[1]
    member = next(m for m in cluster.members if m.name == str(donor.socket))
    donor.execute("SET GLOBAL wsrep_desync = ON")
    try:
        wait_until(lambda: donor.status()["wsrep_local_state"] == "2", 10, "desynced")
        started = time.monotonic()
        wait_until(lambda: (cluster.maintain(), not member.serves)[1], 5, "left")
        assert time.monotonic() - started <= CHECK + 0.15
        assert "wsrep_local_state=2 (Donor/Desynced)" in member.verdict.reason
        assert donor.port not in read_ports(cluster)
    finally:
        donor.execute("SET GLOBAL wsrep_desync = OFF")
    wait_until(lambda: (cluster.maintain(), member.serves)[1], 10, "taken back")


def test_a_certification_conflict_is_reported_and_never_retried(
    galera: EmbeddedGaleraCluster, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    other = galera.nodes[1]  # another app writing to another node, at the same moment
    statements: list[str] = []
    caplog.set_level(logging.WARNING, logger="postfork.topology")
    with pytest.raises(Exception, match="1213"), cluster.writer() as conn:
        cursor = conn.cursor()
        cursor.execute("BEGIN")
        cursor.execute("UPDATE postfork.counters SET value = value + 1 WHERE id = 1")
        statements.append("update")
        done = threading.Event()

        def conflicting() -> None:
            other.execute("UPDATE postfork.counters SET value = value + 100 WHERE id = 1")
            done.set()

        threading.Thread(target=conflicting).start()
        assert done.wait(10)  # committed on node2 first: ours fails certification
        cursor.execute("COMMIT")
        statements.append("commit")
    assert statements == ["update"]  # raised once, at COMMIT; nothing ran again
    assert "error 1213" in caplog.text and "does not retry writes" in caplog.text
    value = galera.nodes[0].execute("SELECT value FROM postfork.counters WHERE id = 1")
    assert value[0][0] % 100 == 0  # only the other node's increment committed
