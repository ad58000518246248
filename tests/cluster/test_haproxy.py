"""Replicas behind Debian's HAProxy (TCP, round robin), the balancer dropping every connection
at once under read load: a plain pool on the balancer's address loses reads in flight; a
Cluster loses none (the balancer's member is left, reads go on from the primary, and it is
taken back at the next check)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from postfork import Cluster, Pool
from postfork_tools.haproxy import EmbeddedHAProxy
from postfork_tools.replication import EmbeddedReplicaSet, wait_until

from ..conftest import reads_under_load

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def balanced() -> Iterator[tuple[EmbeddedReplicaSet, EmbeddedHAProxy]]:
    with EmbeddedReplicaSet(2) as servers:
        servers.primary.execute("CREATE TABLE postfork.items (id INT PRIMARY KEY)")
        servers.primary.execute("INSERT INTO postfork.items VALUES (1), (2), (3)")
        servers.wait_for_replicas()
        backends = [("127.0.0.1", int(replica.port or 0)) for replica in servers.replicas]
        with EmbeddedHAProxy(backends) as balancer:
            yield servers, balancer


def count_items(conn: Any) -> tuple[int, int]:
    cursor = conn.cursor()
    cursor.execute("SELECT COUNT(*), @@port, SLEEP(0.003) FROM postfork.items")
    count, port, _ = cursor.fetchone()
    return int(count), int(port)


def test_the_balancer_spreads_reads_over_both_replicas(
    balanced: tuple[EmbeddedReplicaSet, EmbeddedHAProxy],
) -> None:
    servers, balancer = balanced
    ports: Counter[int] = Counter()
    with Pool(balancer.url(servers.primary_url), min_idle=0, max_size=1) as pool:
        for _ in range(6):
            lease = pool.connection()
            with lease as conn:
                ports[count_items(conn)[1]] += 1
                lease.invalidate()  # the next checkout connects again: the next backend
    assert set(ports) == {replica.port for replica in servers.replicas}


def test_a_balancer_dropping_every_connection_costs_a_cluster_no_read(
    balanced: tuple[EmbeddedReplicaSet, EmbeddedHAProxy],
) -> None:
    servers, balancer = balanced
    behind = balancer.url(servers.primary_url)
    with Pool(behind, min_idle=4, max_size=4, autocommit=True) as plain:
        plain.warm()

        def plain_read() -> object:
            with plain.connection() as conn:
                return count_items(conn)

        done, errors = reads_under_load(plain_read, 1.5, during=balancer.drop_all_connections)
    assert done > 50 and len(errors) > 0, (done, errors)  # the control loses reads in flight

    cluster = Cluster(
        servers.primary_url, [behind], check_interval=0.2, min_idle=4, max_size=4,
        autocommit=True,
    )  # fmt: skip
    try:
        cluster.warm()
        done, errors = reads_under_load(
            lambda: cluster.read(count_items), 1.5, during=balancer.drop_all_connections
        )
        assert done > 50 and errors == [], (done, errors)
        member = cluster.members[1]
        wait_until(lambda: (cluster.maintain(), member.serves)[1], 5, "balancer taken back")
        assert {cluster.read(count_items)[1] for _ in range(8)} <= {
            replica.port for replica in servers.replicas
        }
    finally:
        cluster.close()
