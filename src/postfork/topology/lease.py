"""A checkout routed by a :class:`~postfork.topology.Cluster`: the member is chosen from what
the last checks found (no round trip), and a member that fails on the way is left at once."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import DatabaseUnavailable
from ..pool import Lease

if TYPE_CHECKING:
    from .cluster import Cluster
    from .member import Member


class RoutedLease:
    """``with cluster.reader() as conn:`` / ``with cluster.writer() as conn:``. After
    ``__enter__``, ``member`` is the server it went to and ``lease`` the pool's lease there."""

    __slots__ = ("_cluster", "_write", "lease", "member")

    def __init__(self, cluster: Cluster, *, write: bool) -> None:
        self._cluster = cluster
        self._write = write
        self.member: Member | None = None
        self.lease: Lease | None = None

    def __enter__(self) -> Any:
        cluster = self._cluster
        first = cluster._route(self._write)
        try:
            return self._enter(first)
        except DatabaseUnavailable as exc:
            cluster._left(first, exc)
        for member in cluster._alternatives(self._write, first):
            try:
                return self._enter(member)
            except DatabaseUnavailable as exc:
                cluster._left(member, exc)
        raise cluster._nothing_left(self._write)

    def _enter(self, member: Member) -> Any:
        lease = member.pool.connection()
        conn = lease.__enter__()
        self.member, self.lease = member, lease
        return conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lease, member = self.lease, self.member
        if lease is None or member is None:
            return
        self.lease = None
        lease.__exit__(exc_type, exc, tb)
        cluster = self._cluster
        if self._write and exc is None:  # a failed write was rolled back: nothing to read
            cluster._wrote()
        if exc is not None:
            cluster._failed_in_use(member, exc, write=self._write)

    def invalidate(self, *, timed_out: bool = False) -> None:
        """As :meth:`postfork.Lease.invalidate`, on the member's lease."""
        if self.lease is not None:
            self.lease.invalidate(timed_out=timed_out)
