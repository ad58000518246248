"""SQLAlchemy on a topology: one engine per member (each on :class:`PostforkPool`, so every
guarantee of the pool holds per member), one :class:`~postfork.Cluster` over their pools, and a
``Session`` class that routes each statement the way SQLAlchemy's own "horizontal/vertical
routing" recipe does, with the cluster choosing the replica.

What goes to the primary: a flush, an INSERT/UPDATE/DELETE, a ``SELECT ... FOR UPDATE``, and
every statement of a transaction once it wrote (its uncommitted rows exist only there). After a
commit that wrote, reads in the same thread follow the primary for the cluster's
``read_your_writes`` window. Everything else reads from a replica the last check found fresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql import Delete, Insert, Select, Update

from ..install import Installation
from ..install import install as install_cluster
from ..topology import Cluster, Member
from ..topology.cluster import (
    DEFAULT_CHECK_INTERVAL,
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_MAX_REPLICA_LAG,
)
from ..topology.member import server_name
from ..url import DatabaseURL, parse_url
from .sqlalchemy import PostforkPool, configure_mappers_ahead, engine_url


class ClusterEngines:
    """The engines of a topology: ``writer`` (the primary; Galera: the first node), ``reader()``
    (the engine of the member a read should go to now, no round trip) and ``cluster``."""

    def __init__(self, engines: dict[str, Engine], cluster: Cluster) -> None:
        self.cluster = cluster
        self._by_member = {member.name: engines[member.name] for member in cluster.members}
        self.engines = list(self._by_member.values())
        self.installation: Installation | None = None

    @property
    def writer(self) -> Engine:
        return self.engine_of(self.cluster._route(write=True))

    def reader(self) -> Engine:
        return self.engine_of(self.cluster._route(write=False))

    def engine_of(self, member: Member) -> Engine:
        return self._by_member[member.name]

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()


def create_cluster_engines(
    primary: str | DatabaseURL | None = None,
    replicas: Sequence[str | DatabaseURL] = (),
    *,
    galera: Sequence[str | DatabaseURL] = (),
    install: bool = True,
    max_replica_lag: float = DEFAULT_MAX_REPLICA_LAG,
    check_interval: float = DEFAULT_CHECK_INTERVAL,
    check_timeout: float = DEFAULT_CHECK_TIMEOUT,
    read_your_writes: float | None = None,
    fallback: str = "primary",
    **engine_kwargs: Any,
) -> ClusterEngines:
    """An engine per member (``create_engine(url, poolclass=PostforkPool, **engine_kwargs)``),
    the cluster over them, installed (every worker warm and checked before its first request)
    unless ``install=False``. URLs are postfork's (``mysql://``, ``mysql+pymysql://``)."""
    import sqlalchemy

    urls = list(galera) or [u for u in (primary, *replicas) if u is not None]
    engines = {
        _name(url): sqlalchemy.create_engine(
            engine_url(url), poolclass=PostforkPool, **engine_kwargs
        )
        for url in urls
    }
    pools = {name: engine.pool.postfork_pool for name, engine in engines.items()}  # type: ignore[attr-defined]
    ordered = [pools[_name(url)] for url in urls]
    cluster = Cluster(
        None if galera else ordered[0],
        [] if galera else ordered[1:],
        galera=ordered if galera else (),
        max_replica_lag=max_replica_lag,
        check_interval=check_interval,
        check_timeout=check_timeout,
        read_your_writes=read_your_writes,
        fallback=fallback,
    )
    cluster.master_setups.extend(engine.pool.postfork_master_setup for engine in engines.values())  # type: ignore[attr-defined]
    cluster.prepare = configure_mappers_ahead
    routed = ClusterEngines(engines, cluster)
    if install:
        routed.installation = install_cluster(cluster)
    return routed


def _name(url: str | DatabaseURL) -> str:
    return server_name(parse_url(url))


def _writes(clause: Any) -> bool:
    if isinstance(clause, Insert | Update | Delete):
        return True
    return isinstance(clause, Select) and clause._for_update_arg is not None


class RoutingSession(Session):
    """``sessionmaker(class_=RoutingSession, postfork_engines=engines)``: reads on a fresh
    replica, writes (and the rest of a transaction that wrote) on the primary."""

    def __init__(self, *args: Any, postfork_engines: ClusterEngines, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.postfork_engines = postfork_engines
        self._postfork_wrote = False  # this transaction used the primary for a write

    def get_bind(self, mapper: Any = None, clause: Any = None, **kwargs: Any) -> Any:
        engines = self.postfork_engines
        if self._postfork_wrote or self._flushing or _writes(clause):
            self._postfork_wrote = True
            return engines.writer
        return engines.reader()


@event.listens_for(RoutingSession, "after_commit")
def _committed(session: RoutingSession) -> None:
    """A transaction that wrote committed: the request's later reads go to the primary for
    the cluster's read-your-writes window (a rolled-back one opens none)."""
    if session._postfork_wrote:
        session.postfork_engines.cluster.note_write()


@event.listens_for(RoutingSession, "after_transaction_end")
def _transaction_ended(session: RoutingSession, transaction: Any) -> None:
    """The outermost transaction ended: a later one reads from replicas again."""
    if transaction.parent is None:
        session._postfork_wrote = False
