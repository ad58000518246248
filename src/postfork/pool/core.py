"""The pool's state and every decision about it, once, for the thread pool and the asyncio pool.

:class:`PoolCore` is sans-I/O: it never connects, closes, rolls back or waits. Its two shells do
that: ``pool_async.AsyncPool`` (asyncio) and ``pool.Pool`` (threads), the second generated from
the first by ``scripts/async_to_sync.py``. Each shell asks the core, under ``_lock``, what to do
next (which slot to hand out, whether to connect, how long to wait, why a connection must go)
and tells it what happened; the core keeps the idle stack, the busy set, the mode, the counters
and the small state objects (:class:`~postfork.pool.silence.SilenceBreaker`,
:class:`~postfork.pool.leaks.LeakWatch`).

State changes only under ``_lock`` (a ``threading.Lock`` in both shells: a fork, an exit hook or
a metrics thread may read a pool from another thread); sockets are never touched under it, but
for the zero-timeout ``poll()`` of the liveness check, which cannot block.
"""

from __future__ import annotations

import abc
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol, cast

from .. import fork
from ..drivers import DriverBase, describe_error
from ..errors import DeadlineExceeded, Error, PoolClosed, PoolTimeout
from ..url import DatabaseURL, parse_url
from . import lifetime
from .deadline import Deadline
from .events import PoolEvents, fire
from .leaks import LeakWatch
from .options import PoolOptions, ResolvedOptions
from .silence import SilenceBreaker
from .slot import Slot
from .state import POOL_TRANSITIONS, DiscardReason, PoolEvent, PoolMode, SlotEvent, SlotState
from .state import transition as _transition
from .stats import Counters, PoolStats
from .tcp import detect_dead_peers

log = logging.getLogger("postfork.pool")

_CLOSED = DiscardReason.CLOSED
_SERVING, _CONNECTING, _IN_USE = PoolMode.SERVING, SlotState.CONNECTING, SlotState.IN_USE
_CLOSED_MODE = PoolMode.CLOSED
_getpid = os.getpid


class Waiters(Protocol):
    """How a shell's blocked checkouts are told to look again (threads or tasks). Every call
    is made under the pool's lock, but ``wait``, which is made outside it."""

    def __len__(self) -> int: ...

    def enlist(self) -> Any: ...

    def leave(self, ticket: Any) -> bool: ...

    def wake_one(self) -> None: ...

    def wake_all(self) -> None: ...


class Attempt:
    """One checkout that found the pool without a usable idle connection: its deadline, and
    since when it waits."""

    __slots__ = ("deadline", "since")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.since: float | None = None

    def waiting_since(self) -> float:
        if self.since is None:
            self.since = time.monotonic()
        return self.since

    @property
    def waited(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since


WAIT_TIMEOUT_REREAD = 60.0  # seconds a pool trusts the wait_timeout it read on a connect


class PoolCore(abc.ABC):
    """A per-process pool's state and decisions; see the module's docstring."""

    def __init__(
        self,
        url: str | DatabaseURL,
        driver: DriverBase,
        options: PoolOptions,
        *,
        clock: Callable[[], float],
        rng: random.Random | None,
    ) -> None:
        self.url = parse_url(url)
        self._redacted_url = self.url.redacted()  # stats() may run after every request
        self.options: ResolvedOptions = options.resolved(self.url)
        self._driver = driver
        self.events = PoolEvents()
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._waiters = self._new_waiters()
        self._idle: list[Slot] = []  # LIFO: the most recently used connection is reused first
        self._busy: set[Slot] = set()  # IN_USE and CONNECTING: both count toward max_size
        self._mode = PoolMode.SERVING
        self._pid = os.getpid()
        self._generation = 0
        self._counters = Counters()
        self._silence = SilenceBreaker()
        self._leaks = LeakWatch(self.options.leak_timeout)
        self._wait_timeout: tuple[float, float] | None = None  # (seconds, read at)
        self.fork_hooks = PoolForkHooks(self)
        fork.register(self.fork_hooks)

    @abc.abstractmethod
    def _new_waiters(self) -> Waiters:
        """The shell's way to park a checkout (per process: a child starts with none)."""

    # -- what anyone may ask ----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._mode is PoolMode.CLOSED

    @property
    def mode(self) -> PoolMode:
        return self._mode

    @property
    def driver_name(self) -> str:
        return self._driver.name

    @property
    def degraded(self) -> bool:
        """A connect failed or a connection died in use, and none has connected since: the
        database may be silent, so upkeep right after a response must not wait on a connect."""
        return self._silence.degraded

    def counts(self) -> tuple[int, int]:
        """(idle, in use or connecting) without taking the lock: a cheap, momentary reading
        for gauges (``stats()`` tells connecting ones apart)."""
        return len(self._idle), len(self._busy)

    def is_disconnect(self, exc: BaseException) -> bool:
        """Whether a driver error raised inside a lease means the connection is gone."""
        return self._driver.is_disconnect(exc)

    def error_code(self, exc: BaseException) -> int | None:
        """The MySQL error code of a driver error raised inside a lease (None if it has none)."""
        return self._driver.error_code(exc)

    def describe_error(self, exc: BaseException) -> str:
        """A driver error or postfork's own, in one line (no password: drivers never echo it)."""
        return str(exc) if isinstance(exc, Error) else describe_error(self._driver, exc)

    def ready_now(self) -> bool:
        """Holds its ``min_idle`` live connections (at least one) right now; a connect in
        flight is not a connection yet."""
        with self._lock:
            live = len(self._idle) + sum(1 for s in self._busy if s.state is _IN_USE)
        return live >= max(self.options.min_idle, 1)

    def stats(self) -> PoolStats:
        """A snapshot of this process's pool: sizes, connect costs, waits, discards by reason."""
        self._ensure_process()
        with self._lock:
            counters = self._counters.snapshot()
            connecting = sum(1 for slot in self._busy if slot.state is _CONNECTING)
            idle, in_use = len(self._idle), len(self._busy) - connecting
        stats = {
            "pid": self._pid,
            "generation": self._generation,
            "driver": self._driver.name,
            "url": self._redacted_url,
            "mode": self._mode.value,
            "min_idle": self.options.min_idle,
            "max_size": self.options.max_size,
            "closed": self.closed,
            "idle": idle,
            "in_use": in_use,
            "connecting": connecting,
            **counters,
        }
        return cast(PoolStats, stats)

    def maintenance_due_in(self) -> float | None:
        """Seconds until maintain() has work to do (0.0: now; None: not serving): when the first
        idle connection enters its last 10% of life, or now if short of ``min_idle``."""
        if self._pid != os.getpid():
            return 0.0
        with self._lock:
            if self._mode is not PoolMode.SERVING:
                return None
            if self._needs_refill():
                return 0.0
            due = [
                slot.expires - lifetime.refresh_margin(slot.created, slot.expires)
                for slot in self._idle
            ]
        return max(0.0, min(due) - self._clock()) if due else None

    def note_silence(self, *, drop_idle: bool) -> list[Slot]:
        """The server stopped answering (a connect or a query timed out, a deadline cut one
        off). Until a connect succeeds, a checkout that would connect does not: it waits
        briefly for the connect the upkeep is making, then fails fast, so a silent database
        costs one timeout per worker, not one per request. ``drop_idle``: the idle
        connections go too (a query on them would wait for the same silence); they are
        returned, for the shell to close."""
        with self._lock:
            self._silence.note_silence()
            return self._mark_idle_discarded_as(DiscardReason.STALE) if drop_idle else []

    def __repr__(self) -> str:
        mode = "" if self._mode is PoolMode.SERVING else f" {self._mode.value}"
        return (
            f"<{type(self).__name__} {self._driver.name} {self._redacted_url} pid={self._pid} "
            f"idle={len(self._idle)} in_use={len(self._busy)} "
            f"max_size={self.options.max_size}{mode}>"
        )

    # -- checkout -----------------------------------------------------------------------------

    def _take_idle(self, doomed: list[Slot]) -> Slot | None:
        """Under the lock, the usual checkout: the most recently used live idle slot, counted;
        None when there is none (then :meth:`_reserve_now` decides)."""
        if self._mode is _CLOSED_MODE:
            self._raise_if_closed()
        slot = self._pop_live_idle(doomed)
        if slot is not None:
            self._counters.checkouts += 1
            slot.leased_at, slot.leak_reported = self._clock(), False
        return slot

    def _reserve_now(self, attempt: Attempt, doomed: list[Slot]) -> Slot | float:
        """Under the lock: a live idle slot, or capacity for a new one (CONNECTING), counted as
        a checkout; otherwise how many seconds to wait before asking again. Raises
        PoolClosed, PoolTimeout past the deadline, DatabaseUnavailable while the database is
        silent and no background connect comes soon."""
        if self._mode is _CLOSED_MODE:
            self._raise_if_closed()
        slot = self._pop_live_idle(doomed)
        if slot is None:
            silence = self._silence
            if silence.silent_at and silence.connect_would_wait(self._warming() > 0):
                return silence.wait_for_probe(
                    self.url.target, attempt.deadline, attempt.waiting_since(), self._warming() > 0
                )
            slot = self._reserve_new_slot() if self._size() < self.options.max_size else None
            if slot is None:
                return self._wait_for_slot(attempt)
        waited = attempt.waited
        self._counters.checkouts += 1
        self._counters.wait_seconds += waited
        slot.leased_at, slot.leak_reported = self._clock(), False
        return slot

    def _pop_live_idle(self, doomed: list[Slot]) -> Slot | None:
        now = self._clock()
        idle, reset_pending = self._idle, self._driver.reset_pending
        while idle:
            slot = idle.pop()
            # _idle_unusable_reason() inline for the usual answer (every checkout asks)
            if now < slot.expires and (reset_pending(slot.conn) or not slot.spoke()):
                slot.move(SlotEvent.CHECKOUT)
                self._busy.add(slot)
                return slot
            reason = self._idle_unusable_reason(slot, now, ahead=False)
            if reason is None:  # cannot happen (same tests): kept correct all the same
                slot.move(SlotEvent.CHECKOUT)
                self._busy.add(slot)
                return slot
            self._mark_discarded(slot, reason)
            doomed.append(slot)
        return None

    def _wait_for_slot(self, attempt: Attempt) -> float:
        """Under the lock: the pool is full; seconds left to wait, or PoolTimeout."""
        now = time.monotonic()
        if now >= attempt.deadline:
            self._counters.timeouts += 1
            waited = attempt.waited
            raise PoolTimeout(
                self._timeout_message(waited),
                pool=self,
                max_size=self.options.max_size,
                checkout_timeout=self.options.checkout_timeout,
                waited=waited,
                pid=self._pid,
            )
        if attempt.since is None:
            attempt.since = now
            self._counters.waits += 1
            self._leaks.scan(self._busy, self._clock())
        return attempt.deadline - now

    def _timeout_message(self, waited: float) -> str:
        return (
            f"no connection available within checkout_timeout="
            f"{self.options.checkout_timeout:g}s: all max_size={self.options.max_size} "
            f"connections are in use (waited {waited:.2f}s, pid {self._pid})"
        )

    def _checkout_deadline(self, limit: Deadline | None) -> tuple[float, Deadline | None]:
        """When this checkout gives up, and the request's deadline when that comes first."""
        deadline = time.monotonic() + self.options.checkout_timeout
        if limit is None or limit.expires >= deadline:
            return deadline, None
        if limit.expires <= time.monotonic():
            raise _deadline_exceeded(limit, "no time left for a checkout")
        return float(limit.expires), limit

    def _checkout_failed(self, exc: PoolTimeout, cut: Deadline | None) -> Exception:
        """A checkout gave up: its listeners hear it; under a request's deadline that came
        first, the error names the deadline."""
        if self.events.timeout:
            fire(self.events.timeout, self, exc.waited)
        if cut is not None:
            return _deadline_exceeded(cut, f"waited {exc.waited:.3f}s for a connection")
        return exc

    def _connect_timeout_within(self, slot: Slot, deadline: float, cut: Deadline | None) -> float:
        """How long a checkout's connect may take: ``connect_timeout``, within what the
        request's deadline leaves (whole seconds, rounded down, for a driver that takes whole
        seconds: rounding up would overrun it)."""
        if cut is None:
            return max(min(self.options.connect_timeout, deadline - time.monotonic()), 0.001)
        left = min(self.options.connect_timeout, cut.expires - time.monotonic())
        if self._driver.whole_second_timeouts:
            left = float(int(left))
        if left < 0.001:
            self._release_reserved([slot])
            raise _deadline_exceeded(cut, "no time left to open a connection")
        return left

    def _settle_failed(self, slot: Slot, reason: DiscardReason) -> None:
        """Under no lock: a returned connection's ROLLBACK reply said it is unusable; it is
        discarded and this checkout does not count (the next one will)."""
        with self._lock:
            self._counters.checkouts -= 1
            self._mark_discarded(slot, reason)

    # -- checkin ------------------------------------------------------------------------------

    def _return_reason(
        self, slot: Slot, exc: BaseException | None, invalid: bool
    ) -> DiscardReason | None:
        """Why this returning connection must not be reused, or None (then the shell rolls
        back when :meth:`_needs_rollback` says so)."""
        if invalid or (exc is not None and not isinstance(exc, Exception)):
            return DiscardReason.ERROR  # interrupted mid-protocol (a cancel, ^C): unknown
        if exc is not None and self._driver.is_disconnect(exc):
            return DiscardReason.ERROR
        if not self._driver.is_open(slot.conn):
            return DiscardReason.ERROR  # closed by the caller inside the lease
        if self._clock() >= slot.expires:
            return DiscardReason.LIFETIME  # closing rolls back any open transaction
        return None

    def _needs_rollback(self, slot: Slot, exc: BaseException | None) -> bool:
        """A transaction may be open and no ROLLBACK is on its way yet (the app or its ORM
        may have sent one: then nothing more)."""
        if self._driver.reset_pending(slot.conn):
            return False
        return exc is not None or slot.in_transaction()

    def _put_back(self, slot: Slot, reason: DiscardReason | None) -> bool:
        """Under the lock: the slot back on the idle stack (True), or discarded as ``reason``
        (False: the shell closes it)."""
        if reason is None and self._mode is not _SERVING:
            reason = _CLOSED
        if reason is None:
            self._busy.discard(slot)
            slot.move(SlotEvent.CHECKIN)
            self._idle.append(slot)
            if len(self._waiters):
                self._waiters.wake_one()
            return True
        self._mark_discarded(slot, reason)
        return False

    def _inherited(self, slot: Slot) -> bool:
        """Leased when this process was forked: the fd already points at /dev/null; the
        connection is released, never returned."""
        if slot.generation == self._generation:
            return False
        self._driver.discard_abandoned(slot.conn)
        slot.conn = None
        return True

    # -- connecting ---------------------------------------------------------------------------

    def _reserve_for_warm(self) -> list[Slot] | None:
        """Under the lock: slots to connect for min_idle, counting another thread's or task's
        warm() in flight; None when nothing is left to do (warm, full, or not serving)."""
        self._raise_if_closed()
        if self._mode is not PoolMode.SERVING:
            return None
        warming, size = self._warming(), self._size()
        short = self.options.min_idle - (size - warming)
        if short <= 0 or (size >= self.options.max_size and not warming):
            return None
        wanted = min(short - warming, self.options.max_size - size)
        reserved = [self._reserve_new_slot() for _ in range(max(wanted, 0))]
        for slot in reserved:
            slot.warming = True
        return reserved

    def _connects_in_flight_wait(self, deadline: float) -> float | None:
        """Under the lock: seconds warm() still waits for another's connects (they may fail:
        then it tries itself), or None."""
        if not (self._short_of_min_idle() and any(slot.warming for slot in self._busy)):
            return None
        remaining = deadline - time.monotonic()
        return remaining if remaining > 0 else None

    def _connect_failed(
        self, slot: Slot, exc: BaseException, seconds: float, timeout: float
    ) -> None:
        """A connect into ``slot`` failed after ``seconds``: the capacity is released; a connect
        that ran out its timeout means a silent server."""
        self._release_reserved([slot], failed=True)
        if seconds >= 0.9 * timeout:
            self.note_silence(drop_idle=False)
        if self.events.connect_failed and isinstance(exc, Error):
            fire(self.events.connect_failed, self, exc)

    def _known_wait_timeout(self) -> float | None:
        """The session ``wait_timeout`` an earlier connect of this pool read, while fresh: every
        session of one pool gets the same one (the server's, after ``init_sql``), and reading
        it on each connect cost every new session a statement more than stock drivers send.
        Read again on a connect after ``WAIT_TIMEOUT_REREAD`` seconds (a changed setting)."""
        known = self._wait_timeout
        if known is None or self._clock() - known[1] > WAIT_TIMEOUT_REREAD:
            return None
        return known[0]

    def _learn_wait_timeout(self, seconds: float) -> None:
        self._wait_timeout = (seconds, self._clock())

    def _attach(self, slot: Slot, conn: Any, wait_timeout: float, seconds: float) -> None:
        """A new session in its slot: probes built, TCP dead-peer detection set, a lifetime
        drawn below the server's ``wait_timeout`` with this connection's jitter."""
        now = self._clock()
        fd = self._driver.fileno(conn)
        if self.options.dead_peer_timeout:
            detect_dead_peers(fd, self.options.dead_peer_timeout)
        slot.attach(conn, fd, self._driver)
        slot.connect_seconds = seconds
        draw = self._rng.random()
        options = self.options
        life = lifetime.lifetime(options.max_lifetime, wait_timeout, options.lifetime_jitter, draw)
        slot.created, slot.expires = now, now + life

    def _announce_failed(self, slot: Slot) -> Any:
        """A connect listener failed: the slot's capacity is released; its connection is
        returned for the shell to close."""
        conn, slot.conn = slot.conn, None
        self._release_reserved([slot], failed=True)
        return conn

    def _admit(self, slot: Slot, elapsed: float, for_lease: bool) -> bool:
        """Under no lock: a connected slot is leased or idle now; False when the pool closed
        meanwhile (the shell closes it)."""
        with self._lock:
            slot.warming = False
            self._silence.note_connected()
            self._counters.connects += 1
            self._counters.connect_seconds += elapsed
            slot.move(SlotEvent.CONNECTED_FOR_LEASE if for_lease else SlotEvent.CONNECTED_FOR_IDLE)
            if for_lease:
                return True
            if self._mode is PoolMode.SERVING:
                self._busy.discard(slot)
                self._idle.append(slot)
                self._wake_all()  # a checkout and a warm() may both wait for it (connects: rare)
                return True
            self._mark_discarded(slot, _CLOSED)  # warmed while the pool was being closed
            return False

    def _release_reserved(self, slots: list[Slot], *, failed: bool = False) -> None:
        with self._lock:
            for slot in slots:
                self._busy.discard(slot)
                slot.warming = False
                slot.move(SlotEvent.CONNECT_FAILED)
            if failed:
                self._counters.connect_errors += len(slots)
                self._silence.note_trouble()
            self._wake_all()

    # -- upkeep -------------------------------------------------------------------------------

    def _retire(self, connect: bool) -> tuple[list[Slot], bool]:
        """Under the lock, for maintain(): idle connections near the end of their life or found
        dead (for the shell to close), and whether a refill is due. ``connect=False``: the
        refill is left to the background (noted, so checkouts wait for it)."""
        doomed: list[Slot] = []
        if self._mode is not PoolMode.SERVING:
            return doomed, False
        now = self._clock()
        for slot in list(self._idle):
            reason = self._idle_unusable_reason(slot, now, ahead=True)
            if reason is not None:
                self._mark_discarded(slot, reason)
                doomed.append(slot)
        self._leaks.scan(self._busy, now)
        short = self._needs_refill()
        if short and not connect:
            self._silence.note_refill_left()
        return doomed, short

    def _idle_unusable_reason(self, slot: Slot, now: float, *, ahead: bool) -> DiscardReason | None:
        margin = lifetime.refresh_margin(slot.created, slot.expires) if ahead else 0.0
        if now >= slot.expires - margin:
            return DiscardReason.LIFETIME
        if not self._driver.reset_pending(slot.conn) and slot.spoke():
            return DiscardReason.STALE  # the server closed it or sent an error (KILL, shutdown)
        return None  # (a ROLLBACK reply makes the socket readable: _settle reads, then polls)

    def _needs_refill(self) -> bool:
        """Under the lock: short of ``min_idle`` with room to open one."""
        return self._short_of_min_idle() and self._size() < self.options.max_size

    # -- discards -----------------------------------------------------------------------------

    def _mark_discarded(self, slot: Slot, reason: DiscardReason) -> None:
        """Under the lock: forget the slot and count why. The shell closes it outside."""
        if slot in self._busy:
            self._busy.discard(slot)
        elif slot in self._idle:
            self._idle.remove(slot)
        slot.move(SlotEvent.DISCARD)
        slot.discard_reason = reason
        self._counters.discards[reason.value] += 1
        if reason is DiscardReason.ERROR:
            self._silence.note_trouble()
        self._wake_one()

    def _mark_idle_discarded_as(self, reason: DiscardReason) -> list[Slot]:
        doomed = list(self._idle)
        for slot in doomed:
            self._mark_discarded(slot, reason)
        self._wake_all()
        return doomed

    def _detach_for_close(self, slots: list[Slot]) -> list[tuple[Slot, Any]]:
        """Outside the lock: each discarded slot with the connection to close (None once
        taken: a slot is closed once)."""
        detached = []
        for slot in slots:
            conn, slot.conn = slot.conn, None
            if conn is not None:
                log.debug("closing connection %d (%s)", slot.connection_id, _reason(slot))
                detached.append((slot, conn))
        return detached

    def _announce_discards(self, slots: list[Slot]) -> None:
        if self.events.discard:
            for slot in slots:
                fire(self.events.discard, self, slot, slot.discard_reason)

    # -- modes --------------------------------------------------------------------------------

    def _close_mode(self) -> list[Slot]:
        """Under the lock: closed from now on; the idle slots, for the shell to close."""
        self._move(PoolEvent.CLOSE)
        return self._mark_idle_discarded_as(_CLOSED)

    def enter_master_mode(self) -> tuple[int, int]:
        """In a server's master, before it forks workers: close idle connections cleanly and
        keep none from now on, so workers inherit nothing. Returns (idle connections closed,
        connections still leased: they close when returned). Every forked child serves again.
        No event loop runs in a master: closing is the driver's immediate close."""
        self._ensure_process()
        with self._lock:
            self._move(PoolEvent.ENTER_MASTER)
            leased = sum(1 for slot in self._busy if slot.state is _IN_USE)
            doomed = self._mark_idle_discarded_as(_CLOSED)
        self._close_now(doomed)
        return len(doomed), leased

    def preload(self) -> None:
        """Initialise the driver in this process (a master), so a worker's first connect costs
        a connect and nothing else."""
        self._driver.preload()

    def _reopen(self) -> None:
        """Under the lock: serve again after close()."""
        self._move(PoolEvent.OPEN)

    def _move(self, event: PoolEvent) -> None:
        """Under the lock: change the pool's mode as the table says."""
        self._mode = _transition(POOL_TRANSITIONS, self._mode, event, "pool")

    def _raise_if_closed(self) -> None:
        if self._mode is PoolMode.CLOSED:
            raise PoolClosed(f"pool is closed: {self!r}", pool=self)

    # -- fork and exit ------------------------------------------------------------------------

    def _ensure_process(self) -> None:
        if self._pid != os.getpid():
            with fork.reset_lock:
                if self._pid != os.getpid():
                    self._after_fork_in_child()

    def _after_fork_in_child(self) -> None:
        """Drop every inherited slot without sending a byte; start this process's own pool."""
        inherited = [*self._idle, *self._busy]
        self._lock = threading.Lock()
        self._waiters = self._new_waiters()
        self._idle, self._busy = [], set()
        self._mode = _transition(POOL_TRANSITIONS, self._mode, PoolEvent.FORK, "pool")
        self._pid, self._generation = os.getpid(), self._generation + 1
        self._counters = Counters()
        self._silence = SilenceBreaker()
        self._leaks = LeakWatch(self.options.leak_timeout)
        self._forget_process()
        abandoned = [slot for slot in inherited if self._abandon(slot)]
        log.debug("pid %d: abandoned %d inherited connection(s)", self._pid, len(abandoned))
        if self.events.discard:
            for slot in abandoned:
                fire(self.events.discard, self, slot, DiscardReason.FORK)

    def _forget_process(self) -> None:  # noqa: B027 (a hook: most shells have nothing to drop)
        """A shell's own per-process state, dropped in a new child (asyncio: the loop)."""

    def _abandon(self, slot: Slot) -> bool:
        """Whether the slot held a connection (now pointed at /dev/null)."""
        was_idle, connected = slot.state is SlotState.IDLE, slot.conn is not None
        slot.move(SlotEvent.FORK)
        if not connected:
            return False  # a connect was in flight in another thread of the parent
        slot.discard_reason = DiscardReason.FORK
        self._counters.discards[DiscardReason.FORK.value] += 1
        self._driver.abandon(slot.conn, slot.fd)
        if was_idle:  # a leased one is released when its lease ends (see _inherited)
            self._driver.discard_abandoned(slot.conn)
            slot.conn = None
        return True

    def _close_at_exit(self, wait: float = 0.0) -> None:
        """``close()`` for exit hooks, with the driver's immediate close (no event loop runs
        at exit). By default they never wait for a lock: uWSGI runs its atexit hook inside
        the signal handler of a worker it stops, and that signal may have interrupted this
        very process in a pool call that holds the lock (waiting would hang the worker until
        the master kills it). Busy then: the connections close with the process, and the
        server counts them aborted. An orderly exit (a recycled worker, between requests)
        waits up to ``wait`` seconds: what holds the lock then is another thread (the
        upkeep's), for a moment."""
        if self._pid != os.getpid():
            if not _acquire(fork.reset_lock, wait):
                return
            try:
                if self._pid != os.getpid():
                    self._after_fork_in_child()
            finally:
                fork.reset_lock.release()
        if not _acquire(self._lock, wait):
            log.debug("pid %d: pool busy at exit: not closing its connections", self._pid)
            return
        try:
            doomed = self._close_mode()
        finally:
            self._lock.release()
        self._close_now(doomed)

    def _close_now(self, slots: list[Slot]) -> None:
        """Outside the lock, where no event loop may run (a master, an exit hook): each
        discarded connection closed with the driver's immediate close."""
        for slot, conn in self._detach_for_close(slots):
            try:
                self._driver.close_now(conn)
            except Exception as exc:
                log.debug("closing connection %d raised %r", slot.connection_id, exc)
        self._announce_discards(slots)

    # -- helpers ------------------------------------------------------------------------------

    def _wake_one(self) -> None:
        """Under the lock: let one parked checkout look again (free when nobody waits)."""
        if len(self._waiters):
            self._waiters.wake_one()

    def _wake_all(self) -> None:
        if len(self._waiters):
            self._waiters.wake_all()

    def _size(self) -> int:
        return len(self._idle) + len(self._busy)

    def _short_of_min_idle(self) -> bool:
        """Under the lock: fewer than ``min_idle`` connections idle or leased (a connect in
        flight for warm() is not one yet; one in flight for a checkout will be leased)."""
        return self._size() - self._warming() < self.options.min_idle

    def _warming(self) -> int:
        """Under the lock: connects in flight for warm() (they will be idle, not leased)."""
        return sum(1 for slot in self._busy if slot.warming)

    def _reserve_new_slot(self) -> Slot:
        slot = Slot(self._generation)
        self._busy.add(slot)
        return slot


class PoolForkHooks:
    """What the fork lifecycle (``postfork.fork``) calls on one pool, each named for the moment
    it runs. The registry holds the hooks weakly and the pool holds its hooks; the hooks hold
    the pool weakly, so neither keeps the other alive."""

    __slots__ = ("__weakref__", "_pool")

    def __init__(self, pool: PoolCore) -> None:
        self._pool = weakref.ref(pool)

    @property
    def owner(self) -> PoolCore | None:
        return self._pool()

    def before_fork(self) -> None:
        """Hold the pool's lock across fork(): no child is forked half-way through a change."""
        pool = self._pool()
        if pool is not None:
            pool._lock.acquire()

    def after_fork_in_parent(self) -> None:
        pool = self._pool()
        if pool is not None:
            pool._lock.release()

    def after_fork_in_child(self) -> None:
        """Inherited connections abandoned without a byte sent; the child's own pool starts."""
        pool = self._pool()
        if pool is not None:
            pool._ensure_process()

    def at_exit(self, wait: float) -> None:
        pool = self._pool()
        if pool is not None:
            pool._close_at_exit(wait)


def _deadline_exceeded(limit: Deadline, what: str) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"the request's deadline ({limit.seconds:g}s) passed: {what}", seconds=limit.seconds
    )


def _acquire(lock: threading.Lock, wait: float) -> bool:
    return lock.acquire(timeout=wait) if wait > 0 else lock.acquire(blocking=False)


def _reason(slot: Slot) -> str:
    return slot.discard_reason.value if slot.discard_reason else "?"
