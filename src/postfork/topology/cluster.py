"""``postfork.Cluster``: one object for a primary and its replicas, or a Galera cluster.

Each member has its own :class:`~postfork.Pool`, so every guarantee of the single pool holds per
member (warm before the first request, nothing shared across fork, zero-round-trip liveness,
lifetimes, rollback on return). On top, routing: a write goes to the primary (Galera: the first
Synced node, so certification conflicts stay rare); a read goes to a member the last check found
healthy and fresh enough, in turn; a read shortly after a write in the same request goes to the
primary (``window.py``). Routing reads only what the checks left behind (a tuple and a counter): the
checks run in ``maintain()``, off the request path, once per ``check_interval``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from .. import fork
from ..errors import ConfigError, Error, NoMemberAvailable
from ..pool import Pool
from ..url import DatabaseURL, parse_url
from ..validate import POSITIVE_SECONDS
from .health import Health, Role, Verdict
from .lease import RoutedLease
from .member import Member, server_name
from .window import open_window, opened_at

log = logging.getLogger("postfork.topology")

T = TypeVar("T")
Server = str | DatabaseURL | Pool  # a member: its URL, or a pool already made for it

DEFAULT_MAX_REPLICA_LAG = 5.0
DEFAULT_CHECK_INTERVAL = 1.0
DEFAULT_CHECK_TIMEOUT = 1.0
FALLBACKS = ("primary", "fail")
# the Cluster's own options, for integrations that take them from settings (Django)
CLUSTER_OPTIONS = (
    "max_replica_lag",
    "check_interval",
    "check_timeout",
    "read_your_writes",
    "fallback",
)
GALERA_CONFLICT = 1213  # ER_LOCK_DEADLOCK: on Galera, also a certification failure
GALERA_NOT_READY = 1047  # "WSREP has not yet prepared node for application use"


class Cluster:
    """A primary and replicas (``Cluster(primary_url, [replica_url, ...])``) or a Galera cluster
    (``Cluster(galera=[node_url, ...])``: every node takes writes, but they go to one, the first
    Synced in the order given, so that concurrent transactions rarely conflict at
    certification).

    ``with cluster.writer() as conn:`` writes; ``with cluster.reader() as conn:`` reads from a
    replica within ``max_replica_lag`` seconds of the primary, spread over those that qualify;
    when none does, from the primary (``fallback="fail"``: :class:`NoMemberAvailable` instead).
    For ``read_your_writes`` seconds after a writer block ends without an error, reads in the
    same request go to the primary (default: ``max_replica_lag + check_interval``, the longest
    a replica that qualifies may be behind); the window ends with the request. Such a read
    with the primary found down raises :class:`NoMemberAvailable` saying so: a replica may
    not have the write. ``cluster.read(fn)`` runs an idempotent read and runs it
    again on another member if the connection dies under it.

    Every other keyword is a :class:`~postfork.Pool` option, for every member's pool. A member
    may also be given as a ready :class:`~postfork.Pool` (the ORM integrations do): its upkeep
    stays with whoever made it, the cluster only routes to it and checks it.
    """

    def __init__(
        self,
        primary: Server | None = None,
        replicas: Sequence[Server] = (),
        *,
        max_replica_lag: float = DEFAULT_MAX_REPLICA_LAG,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        check_timeout: float = DEFAULT_CHECK_TIMEOUT,
        read_your_writes: float | None = None,
        fallback: str = "primary",
        galera: Sequence[Server] = (),
        clock: Callable[[], float] = time.monotonic,
        **pool_options: Any,
    ) -> None:
        for name, value in (
            ("max_replica_lag", max_replica_lag),
            ("check_interval", check_interval),
            ("check_timeout", check_timeout),
        ):
            POSITIVE_SECONDS.check(name, value)
        if read_your_writes is not None and read_your_writes != 0:
            POSITIVE_SECONDS.check("read_your_writes", read_your_writes)
        if fallback not in FALLBACKS:
            raise ConfigError(f"fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
        self.max_replica_lag = float(max_replica_lag)
        self.check_interval = float(check_interval)
        self.check_timeout = float(check_timeout)
        self.read_your_writes = float(
            max_replica_lag + check_interval if read_your_writes is None else read_your_writes
        )
        self.fallback = fallback
        self._clock = clock
        self.members = _members(primary, replicas, galera, pool_options)
        self.primary = next((m for m in self.members if m.role is Role.PRIMARY), None)
        self.galera = any(member.role is Role.GALERA for member in self.members)
        self._readable: tuple[Member, ...] = ()  # who may serve a read, as of the last check
        self._writer: Member | None = self.primary  # Galera: the first Synced node
        self._turn = itertools.count()  # spreads reads over the readable members
        self._window_key = object()  # this cluster's read-your-writes window in a request
        self._checking = threading.Lock()  # one check round at a time (timer thread, hooks)
        self._next_check = 0.0
        self.master_setups: list[Callable[[], object]] = []  # install() runs them in a master
        self.prepare: Callable[[], object] | None = None  # install(): once the app is complete
        for member in self.members:
            member.pool.events.listen("connect_failed", _passive_check(self, member))
        self._reroute()
        fork.add_listener(self)

    # -- routing (the request path: no I/O, no lock) ----------------------------------------

    def reader(self) -> RoutedLease:
        return RoutedLease(self, write=False)

    def writer(self) -> RoutedLease:
        return RoutedLease(self, write=True)

    def read(self, func: Callable[[Any], T], *, attempts: int = 2) -> T:
        """``func(conn)`` on a reader; if the member fails under it (its connection died, or a
        Galera node stopped serving: error 1047), the member is left and ``func`` runs again on
        another, up to ``attempts`` times. Only for reads that may run twice; any other error
        (a deadlock, a syntax error) goes up."""
        for attempt in range(1, attempts + 1):
            lease = self.reader()
            try:
                with lease as conn:
                    return func(conn)
            except Exception as exc:
                member = lease.member
                if attempt == attempts or member is None or not self._member_gone(member, exc):
                    raise
                log.info("read on %s failed (%s); running it again elsewhere", member.name, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _route(self, write: bool) -> Member:
        if write or self._in_window():
            writer = self._writer
            if writer is None:
                raise self._nothing_left(True)
            if not write and writer.health not in (Health.UP, Health.UNKNOWN):
                raise self._window_without_writer(writer)
            return writer
        readable = self._readable
        if readable:
            return readable[next(self._turn) % len(readable)]
        if self.fallback == "primary" and self._writer is not None:
            return self._writer
        raise self._nothing_left(False)

    def _alternatives(self, write: bool, tried: Member) -> Iterator[Member]:
        """After ``tried`` failed to connect: the other members that may serve (a write only
        moves between Galera nodes: nothing was sent yet, so another node is safe)."""
        if write:
            candidates = [m for m in self.members if m.role is Role.GALERA and m.serves]
        else:
            candidates = list(self._readable)
            if self.fallback == "primary" and self._writer is not None:
                candidates.append(self._writer)
        yield from (member for member in candidates if member is not tried)

    def _left(self, member: Member, exc: BaseException) -> None:
        member.fail(exc)
        if member is self.primary:
            for other in self.members:
                other.primary_left(max_lag=self.max_replica_lag)
        self._reroute()

    def _in_window(self) -> bool:
        wrote_at = opened_at(self._window_key)
        return wrote_at is not None and self._clock() - wrote_at < self.read_your_writes

    def _wrote(self) -> None:
        open_window(self._window_key, self._clock())

    def note_write(self) -> None:
        """Reads in this request go to the primary for ``read_your_writes`` seconds, as after
        a writer block: for a write this process did not see (the client says it wrote, by a
        cookie of the app's, through another worker)."""
        self._wrote()

    def _window_without_writer(self, writer: Member) -> NoMemberAvailable:
        return NoMemberAvailable(
            f"this request wrote less than read_your_writes={self.read_your_writes:g}s ago, so "
            f"its reads need the {'write node' if self.galera else 'primary'} (a replica may "
            f"not have the write yet), and it is down: {writer.describe()}"
        )

    def _member_gone(self, member: Member, exc: BaseException) -> bool:
        """The error says the member, not the statement, failed."""
        if member.pool.is_disconnect(exc):
            return True
        return self.galera and member.pool.error_code(exc) == GALERA_NOT_READY

    def _failed_in_use(self, member: Member, exc: BaseException, *, write: bool) -> None:
        if self._member_gone(member, exc):
            self._left(member, exc)
        elif self.galera and write and member.pool.error_code(exc) == GALERA_CONFLICT:
            log.warning(
                "write on Galera node %s rolled back by a conflict (error 1213: deadlock or "
                "certification failure); postfork does not retry writes: retry the whole "
                "transaction if it is safe to",
                member.name,
            )

    def _nothing_left(self, write: bool) -> NoMemberAvailable:
        what = "write" if write else "read"
        states = "; ".join(member.describe() for member in self.members)
        return NoMemberAvailable(f"no member can serve a {what}: {states}")

    def _reroute(self) -> None:
        """Recompute who serves, from the members' verdicts (after a check or a failure)."""
        members = self.members
        if self.galera:
            synced = tuple(m for m in members if m.serves or m.health is Health.UNKNOWN)
            self._writer = synced[0] if synced else None
            self._readable = synced
        else:
            self._readable = tuple(m for m in members if m.role is Role.REPLICA and m.serves)

    # -- upkeep (off the request path) ------------------------------------------------------

    def check(self, *, wait: bool = True) -> None:
        """Ask every member how it is (one query each) and route by the answers. Runs from
        ``maintain()`` once per ``check_interval`` (``wait=False``: while another thread is
        checking, that round is enough); called to force a round, it runs after the round in
        progress, which may have begun before what the caller just changed."""
        if not self._checking.acquire(blocking=wait):
            return  # another thread is checking right now
        try:
            self._check_members()
            self._next_check = self._clock() + self.check_interval
        finally:
            self._checking.release()
        self._reroute()

    def _check_members(self) -> None:
        primary_reachable = True
        for member in self.members:  # the primary first (_members): its answer is used below
            before, after = member.check(
                max_lag=self.max_replica_lag,
                primary_reachable=primary_reachable,
                timeout=self.check_timeout,
            )
            if member.role is Role.PRIMARY:
                primary_reachable = after.serves
            _log_change(member, before, after)

    def maintain(self, *, connect: bool = True) -> None:
        """Every member's pool upkeep; then the health checks when due. ``connect=False`` (a
        member is failing: a check could wait ``check_timeout`` on it) leaves the checks to
        the upkeep's timer thread."""
        if self.closed:
            return
        for member in self.members:
            if not member.owns_pool:
                continue  # its own installation maintains it
            try:
                member.pool.maintain(connect=connect)
            except Error as exc:
                self._left(member, exc)
        if connect and self._clock() >= self._next_check:
            self.check(wait=False)

    def maintenance_due_in(self) -> float | None:
        if self.closed:
            return None
        dues = [
            due
            for m in self.members
            if m.owns_pool and (due := m.pool.maintenance_due_in()) is not None
        ]  # a pool it does not own is not maintained here: waking for it would spin
        dues.append(max(0.0, self._next_check - self._clock()))
        return min(dues)

    def ready_now(self) -> bool:
        """The last checks found a member serving (this worker can answer): a replica down is
        no reason to take the worker out of service, nor to wait on its connect in /readyz."""
        return any(member.serves for member in self.members)

    @property
    def degraded(self) -> bool:
        return any(m.pool.degraded or not m.serves for m in self.members)

    def warm(self) -> int:
        """Open every member's ``min_idle`` connections and check each member once, so this
        worker routes right from its first request. A member that cannot be reached is left
        (and checked again later); raises only when no member at all answers."""
        opened = 0
        for member in self.members:
            try:
                opened += member.pool.warm()
            except Error as exc:
                self._left(member, exc)
        self._next_check = 0.0
        # the upkeep timer (already running for an earlier installation) may be mid-check on
        # this cluster, begun before these connections were open: check anew after it
        self.check()
        if not self.ready_now():
            raise self._nothing_left(False)
        return opened

    def after_fork(self) -> None:
        """A worker checks for itself (the master's view is stale and it kept no connections),
        with a lock of its own: one held by a thread of the parent's at fork stays held here."""
        self._checking = threading.Lock()
        self._next_check = 0.0

    # -- what install() and the server hooks use -------------------------------------------

    @property
    def min_idle(self) -> int:
        return sum(member.pool.options.min_idle for member in self.members)

    @property
    def closed(self) -> bool:
        return all(member.pool.closed for member in self.members)

    def counts(self) -> tuple[int, int]:
        idle = in_use = 0
        for member in self.members:
            member_idle, member_in_use = member.pool.counts()
            idle, in_use = idle + member_idle, in_use + member_in_use
        return idle, in_use

    def stats(self) -> dict[str, Any]:
        """Totals (``idle``, ``in_use``, like a pool's) and each member's stats and health."""
        members = [member.stats() for member in self.members]
        return {
            "idle": sum(m["pool"]["idle"] for m in members),
            "in_use": sum(m["pool"]["in_use"] for m in members),
            "readable": [member.name for member in self._readable],
            "writer": self._writer.name if self._writer is not None else None,
            "members": members,
        }

    def preload(self) -> None:
        for member in self.members:
            member.pool.preload()

    def enter_master_mode(self) -> tuple[int, int]:
        closed = leased = 0
        for member in self.members:
            member_closed, member_leased = member.pool.enter_master_mode()
            closed, leased = closed + member_closed, leased + member_leased
        return closed, leased

    def close(self) -> None:
        for member in self.members:
            member.pool.close()

    def run_master_setups(self) -> None:
        """In a master, before it keeps no connection: each ORM engine's first connect."""
        for setup in self.master_setups:
            setup()

    def member_pools(self) -> list[Pool]:
        return [member.pool for member in self.members]

    def is_disconnect(self, exc: BaseException) -> bool:
        return self.members[0].pool.is_disconnect(exc)

    def __repr__(self) -> str:
        return f"<Cluster {'; '.join(member.describe() for member in self.members)}>"


def _members(
    primary: Server | None,
    replicas: Sequence[Server],
    galera: Sequence[Server],
    pool_options: Mapping[str, Any],
) -> list[Member]:
    if isinstance(replicas, str | DatabaseURL | Pool) or isinstance(
        galera, str | DatabaseURL | Pool
    ):
        raise ConfigError("replicas and galera take a list of URLs, not one URL")
    if galera and (primary is not None or replicas):
        raise ConfigError("a Galera cluster has nodes, not a primary and replicas")
    if not galera and primary is None:
        raise ConfigError("a cluster needs a primary URL (or Galera nodes)")
    roles: list[tuple[Server, Role]] = [(url, Role.GALERA) for url in galera]
    if primary is not None:
        roles = [(primary, Role.PRIMARY), *((url, Role.REPLICA) for url in replicas)]
    members = [_member(url, role, pool_options) for url, role in roles]
    names = [member.name for member in members]
    if len(set(names)) != len(names):
        raise ConfigError(f"the same server is given twice: {', '.join(names)}")
    return members


def _member(server: Server, role: Role, pool_options: Mapping[str, Any]) -> Member:
    if isinstance(server, Pool):
        return Member(server, role, server_name(server.url), owns_pool=False)
    parsed = parse_url(server)
    return Member(Pool(parsed, **pool_options), role, server_name(parsed))


def _passive_check(cluster: Cluster, member: Member) -> Callable[[Pool, BaseException], None]:
    """A connect to ``member`` failed (whoever asked: a routed lease, an ORM's engine): it
    leaves at once, without waiting for the next check. Holds the cluster weakly: the pool's
    listener must not keep it alive."""
    ref = weakref.ref(cluster)

    def connect_failed(pool: Pool, error: BaseException) -> None:
        found = ref()
        if found is not None:
            found._left(member, error)

    return connect_failed


def _log_change(member: Member, before: Verdict, after: Verdict) -> None:
    if before.serves and not after.serves:
        log.warning("left: %s", member.describe())
    elif after.serves and not before.serves and before.health is not Health.UNKNOWN:
        log.info("back: %s", member.describe())
