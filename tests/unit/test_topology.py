"""Topology without a server: what each server's status means (health.py), how reads and writes
are routed from the members' verdicts, and the settings a Cluster refuses."""

from __future__ import annotations

import contextvars
from typing import Any

import pytest

import postfork
from postfork import Cluster, ConfigError, NoMemberAvailable
from postfork.topology import Health, Role, Verdict
from postfork.topology.health import judge_galera, judge_replica

from .fakes import FakeClock, FakeDriver

PRIMARY = "mysql://app@db-primary:3306/app"
REPLICAS = ["mysql://app@db-r1:3306/app", "mysql://app@db-r2:3306/app"]
RUNNING = {"Slave_IO_Running": "Yes", "Slave_SQL_Running": "Yes", "Seconds_Behind_Master": 0}


def replica(**changes: Any) -> dict[str, Any]:
    return {**RUNNING, **changes}


def test_a_running_replica_within_the_lag_serves() -> None:
    verdict = judge_replica(replica(Seconds_Behind_Master=2), max_lag=5, primary_reachable=True)
    assert verdict.serves and verdict.lag == 2.0


def test_a_replica_further_behind_than_allowed_is_lagging_with_the_figures() -> None:
    verdict = judge_replica(replica(Seconds_Behind_Master=12), max_lag=5, primary_reachable=True)
    assert verdict.health is Health.LAGGING
    assert verdict.reason == "12s behind > max_replica_lag 5s"


def test_a_replica_whose_sql_thread_stopped_is_stopped_with_the_servers_error() -> None:
    status = replica(Slave_SQL_Running="No", Last_SQL_Error="Duplicate entry '7'")
    verdict = judge_replica(status, max_lag=5, primary_reachable=True)
    assert verdict.health is Health.STOPPED
    assert "Duplicate entry '7'" in verdict.reason


def test_io_thread_down_stops_a_replica_only_while_the_primary_answers() -> None:
    status = replica(Slave_IO_Running="Connecting", Seconds_Behind_Master=None)
    assert judge_replica(status, max_lag=5, primary_reachable=True).health is Health.STOPPED
    # the primary is down: nothing new is written anywhere, what the replica has is the freshest
    assert judge_replica(status, max_lag=5, primary_reachable=False).serves


def test_io_thread_down_with_the_primary_answering_serves_while_its_staleness_is_bounded() -> None:
    """Its lag when last seen replicating plus the time since: within max_lag it is fresh
    enough whatever its I/O thread does (a primary shutting down drops its replicas a moment
    before it stops answering); past it, stopped."""
    status = replica(Slave_IO_Running="Connecting", Seconds_Behind_Master=None)
    within = judge_replica(status, max_lag=5, primary_reachable=True, behind_at_most=1.5)
    assert within.serves and within.lag == 1.5
    beyond = judge_replica(status, max_lag=5, primary_reachable=True, behind_at_most=5.5)
    assert beyond.health is Health.STOPPED and "I/O thread not running" in beyond.reason


def test_a_server_that_replicates_nothing_is_not_a_replica() -> None:
    verdict = judge_replica(None, max_lag=5, primary_reachable=True)
    assert verdict.health is Health.STOPPED and "replicates nothing" in verdict.reason


def test_mysql_8_column_names_are_understood() -> None:
    status = {"Replica_IO_Running": "Yes", "Replica_SQL_Running": "Yes", "Seconds_Behind_Source": 9}
    assert judge_replica(status, max_lag=5, primary_reachable=True).health is Health.LAGGING


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ({"wsrep_ready": "OFF", "wsrep_local_state": "4"}, "wsrep_ready=OFF"),
        (
            {"wsrep_ready": "ON", "wsrep_local_state": "2", "wsrep_cluster_status": "Primary"},
            "wsrep_local_state=2 (Donor/Desynced)",
        ),
        (
            {"wsrep_ready": "ON", "wsrep_local_state": "4", "wsrep_cluster_status": "non-Primary"},
            "wsrep_cluster_status=non-Primary",
        ),
        ({}, "wsrep_ready=missing"),
    ],
)
def test_a_galera_node_serves_only_ready_synced_and_in_the_primary_component(
    status: dict[str, str], reason: str
) -> None:
    verdict = judge_galera(status)
    assert verdict.health is Health.NOT_SYNCED and verdict.reason == reason


def test_a_synced_galera_node_serves() -> None:
    status = {"wsrep_ready": "ON", "wsrep_local_state": "4", "wsrep_cluster_status": "Primary"}
    assert judge_galera(status).serves


def cluster(**options: Any) -> Cluster:
    options.setdefault("driver", FakeDriver())
    return Cluster(PRIMARY, REPLICAS, **options)


def set_health(cluster: Cluster, *verdicts: Verdict) -> None:
    for member, verdict in zip(cluster.members, verdicts, strict=True):
        member.set(verdict)
    cluster._reroute()


UP = Verdict(Health.UP)
DOWN = Verdict(Health.DOWN, reason="refused")
LAGGING = Verdict(Health.LAGGING, lag=9.0, reason="9s behind > max_replica_lag 5s")


def test_reads_take_turns_over_the_replicas_that_serve() -> None:
    topology = cluster()
    set_health(topology, UP, UP, UP)
    picks = [topology._route(write=False).name for _ in range(4)]
    assert picks == ["db-r1:3306", "db-r2:3306", "db-r1:3306", "db-r2:3306"]
    set_health(topology, UP, LAGGING, UP)
    assert {topology._route(write=False).name for _ in range(4)} == {"db-r2:3306"}


def test_reads_fall_back_to_the_primary_or_fail_fast_naming_every_member() -> None:
    topology = cluster()
    set_health(topology, UP, DOWN, LAGGING)
    assert topology._route(write=False).role is Role.PRIMARY
    strict = cluster(fallback="fail")
    set_health(strict, UP, DOWN, LAGGING)
    with pytest.raises(NoMemberAvailable) as raised:
        strict._route(write=False)
    message = str(raised.value)
    assert "replica db-r1:3306 down: refused" in message
    assert "replica db-r2:3306 lagging, 9s behind: 9s behind > max_replica_lag 5s" in message


def test_reads_follow_the_primary_for_the_window_after_a_write_in_this_context_only() -> None:
    clock = FakeClock()
    topology = cluster(clock=clock, read_your_writes=2.0)
    set_health(topology, UP, UP, UP)
    topology._wrote()
    assert topology._route(write=False).role is Role.PRIMARY
    elsewhere = contextvars.Context().run(topology._route, write=False)  # another task's
    assert elsewhere.role is Role.REPLICA
    clock.advance(1.9)
    assert topology._route(write=False).role is Role.PRIMARY
    clock.advance(0.2)
    assert topology._route(write=False).role is Role.REPLICA


def test_the_window_ends_with_the_request_that_wrote_not_with_the_thread() -> None:
    """A sync worker's thread serves the next client next: its reads owe nothing to this
    request's write. Every server's after-response hook calls postfork.after_response()."""
    topology = cluster(read_your_writes=60.0)
    other = cluster(read_your_writes=60.0)
    set_health(topology, UP, UP, UP)
    set_health(other, UP, UP, UP)
    topology.note_write()
    other.note_write()
    assert topology._route(write=False).role is Role.PRIMARY
    assert other._route(write=False).role is Role.PRIMARY
    postfork.after_response()
    assert topology._route(write=False).role is Role.REPLICA
    assert other._route(write=False).role is Role.REPLICA


def test_a_write_block_that_raised_opens_no_window() -> None:
    topology = Cluster(PRIMARY, REPLICAS, driver=FakeDriver(), min_idle=0, read_your_writes=60.0)
    set_health(topology, UP, UP, UP)
    with pytest.raises(ZeroDivisionError), topology.writer():
        1 / 0  # noqa: B018  # the pool rolled it back
    assert topology._route(write=False).role is Role.REPLICA
    with topology.writer():
        pass
    assert topology._route(write=False).role is Role.PRIMARY
    postfork.after_response()


def test_a_read_in_the_window_with_the_primary_down_says_why_instead_of_trying_it() -> None:
    topology = cluster(read_your_writes=60.0)
    set_health(topology, DOWN, UP, UP)
    assert topology._route(write=False).role is Role.REPLICA  # no window: replicas serve
    topology.note_write()
    with pytest.raises(NoMemberAvailable) as raised:
        topology._route(write=False)
    message = str(raised.value)
    assert "this request wrote less than read_your_writes=60s ago" in message
    assert "a replica may not have the write yet" in message
    assert "primary db-primary:3306 down: refused" in message
    postfork.after_response()


def test_the_read_your_writes_window_defaults_to_the_longest_a_fresh_replica_may_lag() -> None:
    assert cluster(max_replica_lag=3, check_interval=0.5).read_your_writes == 3.5


def test_checks_are_due_once_per_interval() -> None:
    clock = FakeClock()
    topology = cluster(clock=clock, check_interval=2.0)
    topology._next_check = clock() + 2.0
    due = topology.maintenance_due_in()
    assert due is not None and due <= 2.0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"primary": None}, "needs a primary URL"),
        ({"replicas": REPLICAS[0]}, "a list of URLs, not one URL"),
        ({"replicas": [PRIMARY]}, "the same server is given twice"),
        ({"fallback": "random"}, "fallback must be one of primary, fail"),
        ({"max_replica_lag": 0}, "max_replica_lag"),
        ({"galera": REPLICAS}, "a Galera cluster has nodes, not a primary and replicas"),
        ({"min_idle": 9, "max_size": 2}, "min_idle"),
    ],
)
def test_a_cluster_refuses_what_cannot_work(arguments: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {"primary": PRIMARY, "replicas": REPLICAS, "driver": FakeDriver()}
    with pytest.raises(ConfigError, match=message):
        Cluster(**{**settings, **arguments})


def test_galera_writes_go_to_the_first_synced_node_and_reads_to_every_synced_one() -> None:
    nodes = ["mysql://app@g1/app", "mysql://app@g2/app", "mysql://app@g3/app"]
    topology = Cluster(galera=nodes, driver=FakeDriver())
    not_synced = Verdict(Health.NOT_SYNCED, reason="wsrep_local_state=2 (Donor/Desynced)")
    set_health(topology, not_synced, UP, UP)
    assert topology._route(write=True).name == "g2:3306"
    assert {topology._route(write=False).name for _ in range(4)} == {"g2:3306", "g3:3306"}
    set_health(topology, not_synced, not_synced, not_synced)
    with pytest.raises(NoMemberAvailable, match="no member can serve a write"):
        topology._route(write=True)


def test_a_replica_that_refuses_a_connect_is_left_at_once_and_the_read_goes_elsewhere() -> None:
    from postfork import Pool

    from .fakes import FakeOperationalError

    refusing, working = FakeDriver(), FakeDriver()
    refusing.fail_next_connects = [FakeOperationalError(2003, "refused")]
    topology = Cluster(
        Pool(PRIMARY, driver=FakeDriver(), min_idle=0),
        [
            Pool(REPLICAS[0], driver=refusing, min_idle=0),
            Pool(REPLICAS[1], driver=working, min_idle=0),
        ],
    )
    set_health(topology, UP, UP, UP)
    lease = topology.reader()
    with lease:
        assert lease.member is topology.members[2]  # not the refusing one
    assert topology.members[1].health is Health.DOWN
    assert "refused" in topology.members[1].verdict.reason
    assert topology._readable == (topology.members[2],)
    assert not topology.members[1].owns_pool  # a ready pool: its upkeep is its maker's


def test_a_child_forked_while_its_parent_checked_still_checks() -> None:
    import os

    topology = cluster()
    topology._checking.acquire()  # the parent's timer thread is mid-check at the fork
    pid = os.fork()
    if pid == 0:  # the fork listener gave the child a lock of its own
        os._exit(0 if topology._checking.acquire(blocking=False) else 1)
    _, status = os.waitpid(pid, 0)
    topology._checking.release()
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_check_that_races_the_process_exit_judges_nothing() -> None:
    """The upkeep's check on a pool closed by the exit hook: no 'left: ... pool is closed'
    line in a leaving worker's log, the verdict stays what it was."""
    topology = cluster()
    set_health(topology, UP, UP, UP)
    member = topology.members[1]
    member.pool.close()
    before, after = member.check(max_lag=5, primary_reachable=True, timeout=1)
    assert before is after and member.serves
