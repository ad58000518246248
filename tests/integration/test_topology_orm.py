"""The topology through the ORMs, on real replication: SQLAlchemy's RoutingSession over
create_cluster_engines(), and a cluster's members surviving children that fork and exit."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Integer, String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import postfork
from postfork.doctor.forkcheck import run_in_subprocess as forkcheck
from postfork.sqlalchemy import RoutingSession, create_cluster_engines
from postfork_tools.replication import EmbeddedReplicaSet

pytestmark = pytest.mark.timeout(240)


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "orm_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(String(40))


@pytest.fixture
def engines(replica_set: EmbeddedReplicaSet) -> Iterator[object]:
    routed = create_cluster_engines(
        replica_set.primary_url,
        replica_set.replica_urls,
        check_interval=0.2,
        read_your_writes=0.5,
        pool_size=2,
    )
    yield routed
    routed.dispose()


def port_of(session: RoutingSession) -> int:
    return int(session.execute(text("SELECT @@port")).scalar_one())


def test_sessions_read_from_replicas_and_write_on_the_primary(
    replica_set: EmbeddedReplicaSet, engines: object
) -> None:
    Session = sessionmaker(class_=RoutingSession, postfork_engines=engines)
    replica_ports = {replica.port for replica in replica_set.replicas}
    with Session() as session:
        assert {port_of(session) for _ in range(6)} == replica_ports
    with Session() as session:
        session.add(Note(body="written"))
        session.flush()  # the transaction wrote: the rest of it runs on the primary
        assert port_of(session) == replica_set.primary.port
        assert session.scalars(select(Note.body)).all() == ["written"]  # uncommitted, seen
        session.commit()
    with Session() as session:  # right after the commit: read-your-writes, on the primary
        assert port_of(session) == replica_set.primary.port
        assert "written" in session.scalars(select(Note.body)).all()
    time.sleep(0.6)
    with Session() as session:
        assert port_of(session) in replica_ports
        assert session.scalars(select(Note).with_for_update()).all()  # FOR UPDATE: primary
    postfork.after_response()  # FOR UPDATE wrote-locked: its window ends with this "request"


def test_the_window_belongs_to_a_committed_write_and_ends_with_its_request(
    replica_set: EmbeddedReplicaSet, engines: object
) -> None:
    Session = sessionmaker(class_=RoutingSession, postfork_engines=engines)
    replica_ports = {replica.port for replica in replica_set.replicas}
    with Session() as session:
        session.add(Note(body="rolled back"))
        session.flush()
        session.rollback()  # nothing written: the next reads owe it nothing
    with Session() as session:
        assert port_of(session) in replica_ports
    with Session() as session:
        session.add(Note(body="kept"))
        session.commit()
    with Session() as session:
        assert port_of(session) == replica_set.primary.port
    postfork.after_response()  # the request ends: the next one reads from the replicas at once
    with Session() as session:
        assert port_of(session) in replica_ports


def test_a_stopped_replica_is_left_by_the_sessions_too(
    replica_set: EmbeddedReplicaSet, engines: object
) -> None:
    Session = sessionmaker(class_=RoutingSession, postfork_engines=engines)
    stale = replica_set.replicas[0]
    stale.execute("STOP SLAVE SQL_THREAD")
    try:
        time.sleep(0.25)
        engines.cluster.maintain()  # type: ignore[attr-defined]  # what the upkeep does
        with Session() as session:
            assert {port_of(session) for _ in range(6)} == {replica_set.replicas[1].port}
    finally:
        stale.execute("START SLAVE SQL_THREAD")


@pytest.mark.parametrize("fork", ["os", "libc"])
def test_every_members_parent_sessions_survive_children_leaving_in_every_way(
    replica_set: EmbeddedReplicaSet, fork: str
) -> None:
    report = forkcheck(
        replica_set.primary_url,
        *("--target", "cluster", "--fork", fork, "--rounds", "2"),
        replicas=replica_set.replica_urls,
    )
    assert report["sessions_unchanged"], report
    assert len(report["sessions_before"]) == 3  # one per member
    assert all(code == [0, 0] or way == "raise" for way, code in report["exit_codes"].items())
    assert report["parent_connects"] == 3  # nobody reconnected
