"""postfork.Cluster on real MariaDB replication: a primary and two replicas, each its own
mariadbd (tools/replication.py), broken on purpose. Each failure has an unprotected control (a
plain pool per server, reads spread by hand) that must show the failure the cluster avoids."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from postfork import Cluster, DatabaseUnavailable, NoMemberAvailable, Pool
from postfork.topology import Health
from postfork_tools.replication import EmbeddedReplicaSet, wait_until

from ..conftest import reads_under_load

pytestmark = pytest.mark.timeout(240)

CHECK = 0.2  # check_interval for these tests: "within one maintenance period" is this


@pytest.fixture
def cluster(replica_set: EmbeddedReplicaSet) -> Iterator[Cluster]:
    cluster = Cluster(
        replica_set.primary_url,
        replica_set.replica_urls,
        check_interval=CHECK,
        max_replica_lag=1.0,
        read_your_writes=0.3,
        min_idle=1,
        max_size=4,
        checkout_timeout=2.0,
        connect_timeout=1.0,
        autocommit=True,
    )
    cluster.warm()
    yield cluster
    cluster.close()


def server_port(conn: object) -> int:
    cursor = conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("SELECT @@port")
    return int(cursor.fetchone()[0])


def read_port(cluster: Cluster) -> int:
    with cluster.reader() as conn:
        return server_port(conn)


def maintain_for(cluster: Cluster, seconds: float) -> None:
    """What the upkeep does in a worker: maintain() now and then (here: every 50 ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        cluster.maintain()
        time.sleep(0.05)


def test_reads_are_spread_over_the_replicas_and_writes_go_to_the_primary(
    replica_set: EmbeddedReplicaSet, cluster: Cluster
) -> None:
    replica_ports = {replica.port for replica in replica_set.replicas}
    seen = [read_port(cluster) for _ in range(20)]
    assert set(seen) == replica_ports
    assert abs(seen.count(seen[0]) - 10) <= 1  # in turn, not all on one
    with cluster.writer() as conn:
        assert server_port(conn) == replica_set.primary.port


def test_a_read_right_after_a_write_sees_it_the_window_then_replicas_again(
    replica_set: EmbeddedReplicaSet, cluster: Cluster
) -> None:
    replica_ports = {replica.port for replica in replica_set.replicas}
    with cluster.writer() as conn:
        conn.cursor().execute("INSERT INTO postfork.notes (body) VALUES ('mine')")
    with cluster.reader() as conn:
        assert server_port(conn) == replica_set.primary.port  # read-your-writes
    time.sleep(0.35)
    assert read_port(cluster) in replica_ports
    # another thread did not write: it reads from replicas at once
    ports: list[int] = []
    with cluster.writer():
        pass
    thread = threading.Thread(target=lambda: ports.append(read_port(cluster)))
    thread.start()
    thread.join()
    assert ports[0] in replica_ports


def test_a_replica_whose_replication_stopped_is_left_within_one_check_and_taken_back(
    replica_set: EmbeddedReplicaSet, cluster: Cluster
) -> None:
    stale = replica_set.replicas[0]
    stale.execute("STOP SLAVE SQL_THREAD")
    try:
        replica_set.primary.execute("INSERT INTO postfork.notes (body) VALUES ('after stop')")
        # the control: a plain pool on that replica serves data that silently ages
        with Pool(stale.url, min_idle=0, autocommit=True) as plain, plain.connection() as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT COUNT(*) FROM postfork.notes WHERE body = 'after stop'")
            assert cursor.fetchone()[0] == 0
        maintain_for(cluster, CHECK + 0.1)
        member = next(m for m in cluster.members if m.name == str(stale.socket))
        assert member.health is Health.STOPPED
        assert "SQL thread not running" in member.verdict.reason
        assert {read_port(cluster) for _ in range(10)} == {replica_set.replicas[1].port}
    finally:
        stale.execute("START SLAVE SQL_THREAD")
    replica_set.wait_for_replicas()
    maintain_for(cluster, CHECK + 0.1)
    assert {read_port(cluster) for _ in range(10)} == {r.port for r in replica_set.replicas}


def test_a_replica_whose_io_thread_stops_serves_while_its_staleness_is_bounded(
    replica_set: EmbeddedReplicaSet, cluster: Cluster
) -> None:
    """The I/O thread stops with the primary still answering (as when the primary drops its
    replicas on its way down): the replica keeps serving while its lag when last seen
    replicating, plus the time since, stays within max_replica_lag (1 s here), then is left;
    back once it replicates again."""
    cut = replica_set.replicas[0]
    member = next(m for m in cluster.members if m.name == str(cut.socket))
    maintain_for(cluster, CHECK + 0.1)
    assert member.serves
    cut.execute("STOP SLAVE IO_THREAD")
    stopped_at = time.monotonic()
    try:
        maintain_for(cluster, CHECK + 0.1)  # checked again at once: still fresh enough
        assert member.serves and member.verdict.lag is not None, member.describe()
        wait_until(lambda: (cluster.maintain(), not member.serves)[1], 3.0, "left")
        assert time.monotonic() - stopped_at >= cluster.max_replica_lag - CHECK - 0.1
        assert "I/O thread not running" in member.verdict.reason
    finally:
        cut.execute("START SLAVE IO_THREAD")
    replica_set.wait_for_replicas()
    wait_until(lambda: (cluster.maintain(), member.serves)[1], 5.0, "back")


def test_a_lagging_replica_is_left_and_comes_back_when_it_catches_up(
    replica_set: EmbeddedReplicaSet, cluster: Cluster
) -> None:
    slow = replica_set.replicas[1]
    slow.execute("STOP SLAVE")
    slow.execute("CHANGE MASTER TO MASTER_DELAY=3")  # applies each event 3 s after it was written
    slow.execute("START SLAVE")
    try:
        replica_set.primary.execute("INSERT INTO postfork.notes (body) VALUES ('delayed')")
        member = next(m for m in cluster.members if m.name == str(slow.socket))
        wait_until(
            lambda: (cluster.maintain(), member.health is Health.LAGGING)[1], 5.0, "lag seen"
        )
        assert member.verdict.lag is not None and member.verdict.lag > 1.0
        assert {read_port(cluster) for _ in range(10)} == {replica_set.replicas[0].port}
    finally:
        slow.execute("STOP SLAVE")
        slow.execute("CHANGE MASTER TO MASTER_DELAY=0")
        slow.execute("START SLAVE")
    replica_set.wait_for_replicas()
    wait_until(lambda: (cluster.maintain(), member.serves)[1], 5.0, "caught up")


def count_notes(conn: object) -> int:
    cursor = conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("SELECT COUNT(*), SLEEP(0.005) FROM postfork.notes")
    return int(cursor.fetchone()[0])


def test_a_replica_killed_under_load_costs_idempotent_reads_nothing(
    replica_set: EmbeddedReplicaSet, cluster: Cluster
) -> None:
    victim = replica_set.replicas[0]
    pools = [
        Pool(url, min_idle=1, max_size=4, autocommit=True, connect_timeout=1.0)
        for url in replica_set.replica_urls
    ]
    turn = itertools.count()

    def plain_read() -> int:  # the control: reads spread over the replicas by hand
        with pools[next(turn) % 2].connection() as conn:
            return count_notes(conn)

    try:
        _, plain_errors = reads_under_load(plain_read, 1.5, during=victim.kill)
        assert plain_errors, "the control should fail: half its reads go to a dead server"
        victim.start()
        replica_set.follow(victim)
        replica_set.wait_for_replicas()
        maintain_for(cluster, CHECK + 0.1)
        assert all(member.serves for member in cluster.members)

        done, errors = reads_under_load(lambda: cluster.read(count_notes), 1.5, during=victim.kill)
        assert errors == [] and done > 50
        member = next(m for m in cluster.members if m.name == str(victim.socket))
        assert member.health is Health.DOWN
        assert {read_port(cluster) for _ in range(10)} == {replica_set.replicas[1].port}
    finally:
        for pool in pools:
            pool.close()
        if victim.pid is None:
            victim.start()
            replica_set.follow(victim)
    replica_set.wait_for_replicas()
    maintain_for(cluster, CHECK + 0.1)
    assert member.serves  # taken back at the next check after it returned


def test_primary_stopped_writes_fail_fast_reads_go_on_and_writes_resume_within_a_second(
    replica_set: EmbeddedReplicaSet, cluster: Cluster
) -> None:
    primary = replica_set.primary
    primary.terminate()
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable), cluster.writer() as conn:
            conn.cursor().execute("INSERT INTO postfork.notes (body) VALUES ('lost')")
        assert time.monotonic() - started < cluster.members[0].pool.options.checkout_timeout
        maintain_for(cluster, CHECK + 0.1)
        # the replicas can only reconnect now: nothing is written anywhere, they serve
        done, errors = reads_under_load(lambda: cluster.read(count_notes), 0.5, threads=2)
        assert errors == [] and done > 10
        assert cluster.primary is not None and cluster.primary.health is Health.DOWN
    finally:
        primary.start()
    back = time.monotonic()
    while True:
        try:
            with cluster.writer() as conn:
                conn.cursor().execute("INSERT INTO postfork.notes (body) VALUES ('back')")
            break
        except DatabaseUnavailable:
            assert time.monotonic() - back < 1.0, "writes did not resume within 1 s"
            time.sleep(0.02)
    replica_set.wait_for_replicas()


def test_replicas_left_while_the_primary_answered_serve_once_it_is_gone_before_a_check(
    replica_set: EmbeddedReplicaSet,
) -> None:
    """A worker checks while the primary is on its way down: the primary still answers, its
    replicas' I/O threads are already down, and this worker never saw them replicating, so
    they are left and reads fall back to the primary. When the primary then refuses a
    connect, the replicas serve at once, not at the next check (a worker recycled by
    max-requests may never reach one: every read it served failed)."""
    for replica in replica_set.replicas:
        replica.execute("STOP SLAVE IO_THREAD")
    cluster = Cluster(
        replica_set.primary_url,
        replica_set.replica_urls,
        check_interval=3600.0,  # no check but warm()'s: only the failure itself may act
        max_replica_lag=1.0,
        min_idle=1,
        connect_timeout=1.0,
        autocommit=True,
    )
    primary = replica_set.primary
    try:
        cluster.warm()
        assert [m.health for m in cluster.members[1:]] == [Health.STOPPED, Health.STOPPED]
        assert read_port(cluster) == primary.port  # fallback="primary"
        primary.terminate()
        ports = {cluster.read(server_port) for _ in range(10)}
        assert ports == {replica.port for replica in replica_set.replicas}
        assert cluster.primary is not None and cluster.primary.health is Health.DOWN
    finally:
        cluster.close()
        primary.start()
        for replica in replica_set.replicas:
            replica.execute("START SLAVE IO_THREAD")
    replica_set.wait_for_replicas()


def test_reads_fail_fast_when_asked_to_and_no_replica_qualifies(
    replica_set: EmbeddedReplicaSet,
) -> None:
    strict = Cluster(
        replica_set.primary_url, replica_set.replica_urls, fallback="fail", check_interval=CHECK
    )
    try:
        strict.warm()
        for replica in replica_set.replicas:
            replica.execute("STOP SLAVE SQL_THREAD")
        strict.check()
        with pytest.raises(NoMemberAvailable, match="SQL thread not running"), strict.reader():
            pass
        relaxed = Cluster(replica_set.primary_url, replica_set.replica_urls)
        relaxed.warm()
        with relaxed.reader() as conn:  # the default falls back to the primary
            assert server_port(conn) == replica_set.primary.port
        relaxed.close()
    finally:
        for replica in replica_set.replicas:
            replica.execute("START SLAVE SQL_THREAD")
        strict.close()


def test_a_worker_with_a_dead_replica_is_ready_without_connecting_to_it_again(
    replica_set: EmbeddedReplicaSet,
) -> None:
    from postfork import install
    from postfork_tools.replication import free_port

    dead = f"mysql://root@127.0.0.1:{free_port()}/postfork"  # nobody listens there
    cluster = Cluster(
        replica_set.primary_url,
        [replica_set.replica_urls[0], dead],
        connect_timeout=1.0,
        autocommit=True,
    )
    try:
        installation = install(cluster, upkeep_timer=False)  # warms now: no server forks here
        dead_member = cluster.members[2]
        failed_before = dead_member.pool.stats()["connect_errors"]
        assert installation.ready()
        # /readyz did not try the dead one again (a silent one would hold it connect_timeout)
        assert dead_member.pool.stats()["connect_errors"] == failed_before
        assert dead_member.health is Health.DOWN
        assert cluster.members[1].serves, cluster.members[1].verdict.reason
        assert {read_port(cluster) for _ in range(6)} == {replica_set.replicas[0].port}
    finally:
        cluster.close()


def test_a_cluster_at_min_idle_zero_connects_to_check(replica_set: EmbeddedReplicaSet) -> None:
    # mysqlclient's connect timeout is whole seconds: a check bounded by check_timeout=1.0
    # alone could never connect, and a member without an idle connection stayed down
    cluster = Cluster(replica_set.primary_url, replica_set.replica_urls, min_idle=0)
    try:
        cluster.warm()
        assert all(m.serves for m in cluster.members), [m.describe() for m in cluster.members]
        assert {read_port(cluster) for _ in range(10)} == {r.port for r in replica_set.replicas}
    finally:
        cluster.close()


def test_a_member_whose_connections_are_all_in_use_is_not_taken_for_down(
    replica_set: EmbeddedReplicaSet,
) -> None:
    cluster = Cluster(
        replica_set.primary_url,
        replica_set.replica_urls,
        min_idle=1,
        max_size=1,
        check_timeout=0.2,
        autocommit=True,
    )
    try:
        cluster.warm()
        busy = cluster.members[1]
        with busy.pool.connection():  # a request holds its only connection through the check
            cluster.check()
            assert busy.serves, busy.describe()
        assert busy.left == 0
    finally:
        cluster.close()


def test_warming_while_the_upkeep_timer_checks_waits_for_the_answers(
    replica_set: EmbeddedReplicaSet,
) -> None:
    # the upkeep timer of an earlier installation in this process may be mid-check on a
    # cluster being installed; warm() skipped its own check then, and the first reads went to
    # the primary while every replica was still "not checked yet"
    cluster = Cluster(replica_set.primary_url, replica_set.replica_urls, autocommit=True)
    try:
        cluster._checking.acquire()  # a check round in progress on the timer thread
        threading.Timer(0.3, cluster._checking.release).start()
        cluster.warm()
        assert all(m.serves for m in cluster.members), [m.describe() for m in cluster.members]
        assert {read_port(cluster) for _ in range(10)} == {r.port for r in replica_set.replicas}
    finally:
        cluster.close()
