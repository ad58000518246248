"""The fork-aware connection pool: slots, leases, a LIFO idle stack and honest limits.

Pool state (the idle stack, the busy set, the mode) changes only under ``_lock``; connects,
rollbacks, closes, logging and event listeners run outside it. The only socket call made under
the lock is the zero-timeout ``poll()`` of the liveness check, which cannot block.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from .. import fork
from ..drivers import Driver, describe_error, load_driver, translate_connect_error
from ..errors import (
    ConfigError,
    DatabaseUnavailable,
    DeadlineExceeded,
    Error,
    PoolClosed,
    PoolTimeout,
)
from ..url import DatabaseURL, parse_url
from . import lifetime
from .deadline import Deadline
from .events import PoolEvents, fire
from .lease import Lease
from .options import (
    DEFAULT_CHECKOUT_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DEAD_PEER_TIMEOUT,
    DEFAULT_MAX_LIFETIME,
    PoolOptions,
)
from .slot import Slot
from .state import POOL_TRANSITIONS, DiscardReason, PoolEvent, PoolMode, SlotEvent, SlotState
from .state import transition as _transition
from .stats import Counters, PoolStats
from .tcp import detect_dead_peers

log = logging.getLogger("postfork.pool")

# A silent server (note_silence): a checkout waits this long for the background connect before
# failing fast, and without one in flight, connects again only this long after the last timeout.
PROBE_WAIT = 0.25
SILENCE_BACKOFF = 0.5

_CLOSED = DiscardReason.CLOSED
_SERVING, _CONNECTING = PoolMode.SERVING, SlotState.CONNECTING  # bound once: hot-path tests
_CLOSED_MODE = PoolMode.CLOSED
_getpid = os.getpid


class Pool:
    """A per-process pool of MySQL connections that survives ``fork()`` without sharing a socket.

    ``driver`` is "mysqlclient" (default, or the URL's ``mysql+pymysql://`` choice) or "pymysql".
    ``connect_args`` go to the driver's ``connect()`` as they are (``client_flag``, ``conv``).

    ``clock`` (seconds, monotonic) and ``rng`` drive lifetimes and jitter and exist so tests can
    replace them; checkout timeouts always use real time.
    """

    def __init__(
        self,
        url: str | DatabaseURL,
        *,
        driver: str | Driver | None = None,
        min_idle: int = 1,
        max_size: int = 4,
        checkout_timeout: float = DEFAULT_CHECKOUT_TIMEOUT,
        connect_timeout: float | None = None,
        max_lifetime: float | None = None,
        lifetime_jitter: float = 0.1,
        init_sql: Iterable[str] = (),
        autocommit: bool = False,
        leak_timeout: float | None = None,
        connect_args: Mapping[str, Any] | None = None,
        dead_peer_timeout: float = DEFAULT_DEAD_PEER_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise _unknown_arguments(unknown)
        self.url = parse_url(url)
        self._redacted_url = self.url.redacted()  # stats() may run after every request
        self.options = PoolOptions(
            min_idle=min_idle,
            max_size=max_size,
            checkout_timeout=checkout_timeout,
            connect_timeout=connect_timeout,
            max_lifetime=max_lifetime,
            lifetime_jitter=lifetime_jitter,
            init_sql=tuple(init_sql) if not isinstance(init_sql, str) else (init_sql,),
            autocommit=autocommit,
            leak_timeout=leak_timeout,
            connect_args=connect_args or {},
            dead_peer_timeout=dead_peer_timeout,
        )
        options = self.options
        self.min_idle, self.max_size = options.min_idle, options.max_size
        self.checkout_timeout = float(options.checkout_timeout)
        self.connect_timeout = float(
            options.connect_timeout
            or self.url.options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        )
        self.max_lifetime = float(options.max_lifetime or DEFAULT_MAX_LIFETIME)
        self.lifetime_jitter = float(options.lifetime_jitter)
        self.leak_timeout = options.leak_timeout
        self.dead_peer_timeout = float(options.dead_peer_timeout)
        self.init_sql, self.autocommit = options.init_sql, options.autocommit
        self._driver: Driver = (
            driver
            if isinstance(driver, Driver)
            else load_driver(driver or self.url.driver or "mysqlclient")
        )
        self.events = PoolEvents()
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock, self._cond = _new_lock_and_condition()
        self._waiters = 0  # checkouts blocked in _cond.wait(): notify only when someone waits
        self._leak_reports: list[tuple[int, float]] = []  # found under the lock, logged outside
        self._idle: list[Slot] = []  # LIFO: the most recently used connection is reused first
        self._busy: set[Slot] = set()  # IN_USE and CONNECTING: both count toward max_size
        self._mode = PoolMode.SERVING
        self._pid = os.getpid()
        self._generation = 0
        self._counters = Counters()
        # a connect failed or a connection died in use, and none has connected since: the
        # database may be silent, so after-response upkeep must not wait on a connect
        self.degraded = False
        self._silent_at = 0.0  # when the server last looked silent (0.0: never, or answered)
        self._refill_left_at = 0.0  # maintain(connect=False) left a refill to the upkeep timer
        fork.register(self)

    # -- public API -------------------------------------------------------------------------

    def connection(self) -> Lease:
        """``with pool.connection() as conn:`` leases a DB-API connection for the block."""
        return Lease(self)

    def warm(self) -> int:
        """Open connections until ``min_idle`` are idle or leased (within ``max_size``); returns
        how many it opened. Connects already in flight in another thread (the upkeep timer) are
        waited for, so the pool is warm when this returns. A leased connection counts: it comes
        back when its request ends, and a spare opened beside it in a worker that serves one
        request at a time would never be used, yet held open against ``max_connections``."""
        self._ensure_process()
        opened = 0
        for _ in range(self.min_idle + 1):  # each round opens or waits for at least one
            reserved = self._reserve_for_warm()
            if reserved is None:
                return opened
            for index, slot in enumerate(reserved):
                try:
                    self._open(slot, deadline=None, for_lease=False)
                except BaseException:
                    self._release_reserved(reserved[index + 1 :])
                    raise
            opened += len(reserved)
            self._await_connects_in_flight()  # another thread's; if they failed, try ourselves
        return opened

    def _reserve_for_warm(self) -> list[Slot] | None:
        """Slots to connect for min_idle, counting another thread's warm() in flight; None
        when nothing is left to do (warm, full, or not serving)."""
        with self._lock:
            self._raise_if_closed()
            if self._mode is not PoolMode.SERVING:
                return None
            warming = self._warming()
            short = self.min_idle - (self._size() - warming)
            if short <= 0 or (self._size() >= self.max_size and not warming):
                return None
            wanted = min(short - warming, self.max_size - self._size())
            reserved = [self._reserve_new_slot() for _ in range(max(wanted, 0))]
            for slot in reserved:
                slot.warming = True
            return reserved

    def _await_connects_in_flight(self) -> None:
        deadline = time.monotonic() + self.connect_timeout
        with self._lock:
            while self._short_of_min_idle() and any(slot.warming for slot in self._busy):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._waiters += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiters -= 1

    def maintain(self, *, connect: bool = True) -> None:
        """Off the request path: retire idle connections near the end of their life, refill.

        ``install()`` and the integrations call it after each response is sent, so the next
        checkout finds a fresh connection instead of paying for a connect. ``connect=False``
        retires but does not refill (the upkeep's timer thread does, when ``degraded``: a
        connect to a silent database would hold the worker for ``connect_timeout``).
        """
        self._ensure_process()
        doomed: list[Slot] = []
        with self._lock:
            if self._mode is not PoolMode.SERVING:
                return
            now = self._clock()
            for slot in list(self._idle):
                reason = self._idle_unusable_reason(slot, now, ahead=True)
                if reason is not None:
                    self._mark_discarded(slot, reason)
                    doomed.append(slot)
            self._find_leaks(now)
            short = self._short_of_min_idle() and self._size() < self.max_size
            if short and not connect:
                self._refill_left_at = time.monotonic()
        self._log_leaks()
        self._close_all(doomed)
        if short and connect:  # runs after every response: warm() only when there is work
            self.warm()

    def maintenance_due_in(self) -> float | None:
        """Seconds until maintain() has work to do (0.0: now; None: not serving): when the first
        idle connection enters its last 10% of life, or now if short of ``min_idle``."""
        if self._pid != os.getpid():
            return 0.0
        with self._lock:
            if self._mode is not PoolMode.SERVING:
                return None
            if self._short_of_min_idle() and self._size() < self.max_size:
                return 0.0
            due = [
                slot.expires - lifetime.refresh_margin(slot.created, slot.expires)
                for slot in self._idle
            ]
        return max(0.0, min(due) - self._clock()) if due else None

    def close(self) -> None:
        """Close idle connections now; leased ones are closed when their lease ends."""
        self._ensure_process()
        with self._lock:
            self._move(PoolEvent.CLOSE)
        self._drop_idle()

    def enter_master_mode(self) -> tuple[int, int]:
        """In a server's master, before it forks workers: close idle connections cleanly and
        keep none from now on, so workers inherit nothing. Returns (idle connections closed,
        connections still leased: they close when returned). Every forked child serves again."""
        self._ensure_process()
        with self._lock:
            self._move(PoolEvent.ENTER_MASTER)
            leased = sum(1 for slot in self._busy if slot.state is SlotState.IN_USE)
        return self._drop_idle(), leased

    def preload(self) -> None:
        """Initialise the driver in this process (a master), so a worker's first connect costs
        a connect and nothing else."""
        self._driver.preload()

    @property
    def closed(self) -> bool:
        return self._mode is PoolMode.CLOSED

    @property
    def mode(self) -> PoolMode:
        return self._mode

    @property
    def driver_name(self) -> str:
        return self._driver.name

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
            live = len(self._idle) + sum(1 for s in self._busy if s.state is SlotState.IN_USE)
        return live >= max(self.min_idle, 1)

    def stats(self) -> PoolStats:
        """A snapshot of this process's pool: sizes, connect costs, waits, discards by reason."""
        self._ensure_process()
        with self._lock:
            counters = self._counters.snapshot()
            connecting = sum(1 for slot in self._busy if slot.state is SlotState.CONNECTING)
            idle, in_use = len(self._idle), len(self._busy) - connecting
        stats = {
            "pid": self._pid,
            "generation": self._generation,
            "driver": self._driver.name,
            "url": self._redacted_url,
            "mode": self._mode.value,
            "min_idle": self.min_idle,
            "max_size": self.max_size,
            "closed": self.closed,
            "idle": idle,
            "in_use": in_use,
            "connecting": connecting,
            **counters,
        }
        return cast(PoolStats, stats)

    def __repr__(self) -> str:
        mode = "" if self._mode is PoolMode.SERVING else f" {self._mode.value}"
        return (
            f"<Pool {self._driver.name} {self._redacted_url} pid={self._pid} "
            f"idle={len(self._idle)} in_use={len(self._busy)} max_size={self.max_size}{mode}>"
        )

    # -- checkout and checkin ---------------------------------------------------------------

    def _checkout(self, limit: Deadline | None = None) -> tuple[Slot, float, float]:
        """Reserve a live idle slot or capacity for a new one; connect outside the lock.
        ``limit``: the request's deadline, when it comes before ``checkout_timeout``."""
        if self._pid != _getpid():
            self._ensure_process()
        deadline = time.monotonic() + self.checkout_timeout
        # the request's deadline, when it ends the wait before checkout_timeout does
        cut = limit if limit is not None and limit.expires < deadline else None
        if cut is not None:
            deadline = self._within(cut)
        while True:
            doomed: list[Slot] = []
            try:
                slot, waited = self._reserve(deadline, doomed)
            except PoolTimeout as exc:
                if self.events.timeout:
                    fire(self.events.timeout, self, exc.waited)
                if cut is not None:
                    waited_for = f"waited {exc.waited:.3f}s for a connection"
                    raise _deadline_exceeded(cut, waited_for) from None
                raise
            finally:
                if doomed:
                    self._close_all(doomed)
                if self._leak_reports:
                    self._log_leaks()
            if slot.state is _CONNECTING:
                if cut is not None:
                    return slot, waited, self._open_within(slot, cut)
                return slot, waited, self._open(slot, deadline=deadline, for_lease=True)
            if self._driver.reset_pending(slot.conn) and not self._settle(slot, deadline):
                continue  # its rollback's reply said it is dead: it was discarded, next one
            return slot, waited, 0.0

    def _within(self, limit: Deadline) -> float:
        if limit.expires <= time.monotonic():
            raise _deadline_exceeded(limit, "no time left for a checkout")
        return float(limit.expires)

    def _open_within(self, slot: Slot, limit: Deadline) -> float:
        """Connect within what the request's deadline leaves (whole seconds, rounded down, for
        a driver that takes whole seconds: rounding up would overrun it)."""
        left = min(self.connect_timeout, limit.expires - time.monotonic())
        if self._driver.whole_second_timeouts:
            left = float(int(left))
        if left < 0.001:
            self._release_reserved([slot])
            raise _deadline_exceeded(limit, "no time left to open a connection")
        return self._open(slot, deadline=time.monotonic() + left, for_lease=True)

    def _settle(self, slot: Slot, deadline: float) -> bool:
        """Outside the lock: read the reply of the ROLLBACK sent when this connection was
        returned (long arrived, normally), then check it as any idle one; False if it is
        unusable (then discarded, and this checkout is not counted). A reply still missing is
        waited for until the checkout's deadline, never longer: the driver's read has no
        timeout, and a server gone silent since would hold the checkout forever."""
        reason: DiscardReason | None = None
        if not slot.poller.poll(0) and not slot.poller.poll(_millis_until(deadline)):
            log.info(
                "discarding connection %d: no reply to its rollback within the checkout's "
                "deadline (the server may be silent)",
                slot.connection_id,
            )
            reason = DiscardReason.STALE
        else:
            try:
                self._driver.finish_reset(slot.conn)
            except Exception as exc:
                log.info(
                    "discarding connection %d: its rollback failed: %r", slot.connection_id, exc
                )
                reason = DiscardReason.STALE
        if reason is None and slot.poller.poll(0):  # slot.server_spoke(), inline
            reason = DiscardReason.STALE
        if reason is None:
            return True
        with self._lock:
            self._counters.checkouts -= 1
            self._mark_discarded(slot, reason)
        self._close_all([slot])
        return False

    def _reserve(self, deadline: float, doomed: list[Slot]) -> tuple[Slot, float]:
        waiting_since: float | None = None
        with self._lock:
            while True:
                if self._mode is _CLOSED_MODE:
                    self._raise_if_closed()
                slot = self._pop_live_idle(doomed)
                if slot is None:
                    if self._silent_at and self._connect_would_wait_on_silence():
                        waiting_since = self._wait_for_probe(deadline, waiting_since)
                        continue
                    slot = self._reserve_new_slot_if_room()
                if slot is not None:
                    break
                waiting_since = self._wait_for_slot(deadline, waiting_since)
            waited = 0.0 if waiting_since is None else time.monotonic() - waiting_since
            self._counters.checkouts += 1
            self._counters.wait_seconds += waited
            slot.leased_at, slot.leak_reported = self._clock(), False
        return slot, waited

    def _pop_live_idle(self, doomed: list[Slot]) -> Slot | None:
        now = self._clock()
        idle, reset_pending = self._idle, self._driver.reset_pending
        while idle:
            slot = idle.pop()
            # _idle_unusable_reason() inline for the usual answer (every checkout asks)
            if now < slot.expires and (reset_pending(slot.conn) or not slot.poller.poll(0)):
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

    # -- a silent database: fail fast instead of holding the worker --------------------------

    def note_silence(self, *, drop_idle: bool) -> None:
        """The server stopped answering (a connect or a query timed out, a deadline cut one
        off). Until a connect succeeds, a checkout that would connect does not: it waits
        briefly for the connect the upkeep's timer thread is making, then fails fast, so a
        silent database costs one timeout per worker, not one per request. ``drop_idle``: the
        idle connections go too (a query on them would wait for the same silence)."""
        with self._lock:
            self._silent_at = time.monotonic()
            self.degraded = True
            doomed = self._mark_idle_discarded_as(DiscardReason.STALE) if drop_idle else []
        self._close_all(doomed)

    def _connect_would_wait_on_silence(self) -> bool:
        """Under the lock, with ``_silent_at`` set (a successful connect clears it): a
        connect now would likely wait for the silent server too."""
        return self._probing() or time.monotonic() - self._silent_at < SILENCE_BACKOFF

    def _probing(self) -> bool:
        """Under the lock: the upkeep (warm()) is connecting in another thread, or is about to:
        the refill was left to its timer thread a moment ago (after the response that timed
        out), and a checkout arriving before that thread gets a CPU waits for it too."""
        return (
            any(slot.warming for slot in self._busy)
            or time.monotonic() - self._refill_left_at < PROBE_WAIT
        )

    def _wait_for_probe(self, deadline: float, waiting_since: float | None) -> float:
        """Under the lock: wait up to PROBE_WAIT for the background connect, then fail fast
        (at once when none is in flight)."""
        now = time.monotonic()
        if waiting_since is None:
            waiting_since = now
        give_up = min(deadline, waiting_since + PROBE_WAIT) if self._probing() else now
        if now >= give_up:
            ago = now - self._silent_at
            raise DatabaseUnavailable(
                f"MySQL at {self.url.target} is not answering (a connect or query timed out "
                f"{ago:.1f}s ago): not waiting for it on this request; reconnecting in the "
                "background"
            )
        self._wait(give_up - now)
        return waiting_since

    def _reserve_new_slot_if_room(self) -> Slot | None:
        return self._reserve_new_slot() if self._size() < self.max_size else None

    def _reserve_new_slot(self) -> Slot:
        slot = Slot(self._generation)
        self._busy.add(slot)
        return slot

    def _wait_for_slot(self, deadline: float, waiting_since: float | None) -> float:
        now = time.monotonic()
        if now >= deadline:
            self._counters.timeouts += 1
            waited = now - (waiting_since or now)
            raise PoolTimeout(
                self._timeout_message(waited),
                pool=self,
                max_size=self.max_size,
                checkout_timeout=self.checkout_timeout,
                waited=waited,
                pid=self._pid,
            )
        if waiting_since is None:
            self._counters.waits += 1
            waiting_since = now
            self._find_leaks(self._clock())
        self._wait(deadline - now)
        return waiting_since

    def _wait(self, timeout: float) -> None:
        """Under the lock: sleep until a slot is freed or connected (counted for notify)."""
        self._waiters += 1
        try:
            self._cond.wait(timeout)
        finally:
            self._waiters -= 1

    def _timeout_message(self, waited: float) -> str:
        return (
            f"no connection available within checkout_timeout={self.checkout_timeout:g}s: "
            f"all max_size={self.max_size} connections are in use "
            f"(waited {waited:.2f}s, pid {self._pid})"
        )

    def _checkin(self, slot: Slot, exc: BaseException | None, invalid: bool) -> None:
        if self._pid != _getpid():
            self._ensure_process()
        if slot.generation != self._generation:
            # Leased when this process was forked: the fd already points at /dev/null.
            self._driver.discard_abandoned(slot.conn)
            slot.conn = None
            return
        serving = self._mode is _SERVING
        reason = self._return_reason(slot, exc, invalid) if serving else _CLOSED
        with self._lock:
            if reason is None and self._mode is not _SERVING:
                reason = _CLOSED
            if reason is None:
                self._busy.discard(slot)
                slot.move(SlotEvent.CHECKIN)
                self._idle.append(slot)
                if self._waiters:  # _wake_one(), inline
                    self._cond.notify()
                return
            self._mark_discarded(slot, reason)
        self._close_all([slot])

    def _return_reason(
        self, slot: Slot, exc: BaseException | None, invalid: bool
    ) -> DiscardReason | None:
        """Why this returning connection must not be reused, or None; rolls back if needed."""
        if invalid or (exc is not None and not isinstance(exc, Exception)):
            return DiscardReason.ERROR  # interrupted mid-protocol (KeyboardInterrupt): unknown
        if exc is not None and self._driver.is_disconnect(exc):
            return DiscardReason.ERROR
        if not self._driver.is_open(slot.conn):
            return DiscardReason.ERROR  # closed by the caller inside the lease
        if self._clock() >= slot.expires:
            return DiscardReason.LIFETIME  # closing rolls back any open transaction
        return self._reset(slot, force_rollback=exc is not None)

    def _reset(self, slot: Slot, *, force_rollback: bool) -> DiscardReason | None:
        """Roll back if a transaction is open; the ROLLBACK is sent, its reply read at the next
        checkout. Nothing when one is already on its way (the app or its ORM rolled back)."""
        driver = self._driver
        if driver.reset_pending(slot.conn):
            return None
        try:
            if force_rollback or slot.in_transaction():
                driver.rollback(slot.conn)
        except Exception as exc:
            log.info(
                "discarding connection %d: rollback on return failed: %r", slot.connection_id, exc
            )
            return DiscardReason.ERROR
        return None

    # -- liveness, lifetime, discards -------------------------------------------------------

    def _idle_unusable_reason(self, slot: Slot, now: float, *, ahead: bool) -> DiscardReason | None:
        margin = lifetime.refresh_margin(slot.created, slot.expires) if ahead else 0.0
        if now >= slot.expires - margin:
            return DiscardReason.LIFETIME
        if not self._driver.reset_pending(slot.conn) and slot.server_spoke():
            return DiscardReason.STALE  # the server closed it or sent an error (KILL, shutdown)
        return None  # (a ROLLBACK reply makes the socket readable: _settle reads, then polls)

    def _mark_discarded(self, slot: Slot, reason: DiscardReason) -> None:
        """Under the lock: forget the slot and count why. The caller closes it outside."""
        if slot in self._busy:
            self._busy.discard(slot)
        elif slot in self._idle:
            self._idle.remove(slot)
        slot.move(SlotEvent.DISCARD)
        slot.discard_reason = reason
        self._counters.discards[reason.value] += 1
        if reason is DiscardReason.ERROR:
            self.degraded = True
        self._wake_one()

    def _close_all(self, slots: list[Slot]) -> None:
        """Outside the lock: close discarded connections cleanly (they belong to this process),
        then tell the discard listeners."""
        for slot in slots:
            conn, slot.conn = slot.conn, None
            if conn is None:
                continue
            log.debug("closing connection %d (%s)", slot.connection_id, _reason(slot))
            try:
                self._driver.close(conn)
            except Exception as exc:
                log.debug("closing discarded connection %d raised %r", slot.connection_id, exc)
        if self.events.discard:
            for slot in slots:
                fire(self.events.discard, self, slot, slot.discard_reason)

    def _find_leaks(self, now: float) -> None:
        """Under the lock: note leases held past ``leak_timeout`` (logged after the lock)."""
        if self.leak_timeout is None:
            return
        for slot in self._busy:
            held = now - slot.leased_at
            if (
                slot.state is SlotState.IN_USE
                and held > self.leak_timeout
                and not slot.leak_reported
            ):
                slot.leak_reported = True
                self._leak_reports.append((slot.connection_id, held))

    def _log_leaks(self) -> None:
        while self._leak_reports:
            connection_id, held = self._leak_reports.pop()
            log.warning(
                "connection %d has been leased for %.1fs (leak_timeout=%gs): is a lease never "
                "closed?",
                connection_id,
                held,
                self.leak_timeout,
            )

    # -- connecting -------------------------------------------------------------------------

    def _open(self, slot: Slot, *, deadline: float | None, for_lease: bool) -> float:
        """Connect into a reserved slot; on failure release the capacity and raise."""
        timeout = self.connect_timeout
        if deadline is not None:
            timeout = max(min(timeout, deadline - time.monotonic()), 0.001)
        started = time.perf_counter()
        try:
            conn, wait_timeout = self._connect(timeout)
        except BaseException as exc:
            self._release_reserved([slot], failed=True)
            if time.perf_counter() - started >= 0.9 * timeout:  # it timed out: a silent server
                self.note_silence(drop_idle=False)
            if self.events.connect_failed and isinstance(exc, Error):
                fire(self.events.connect_failed, self, exc)
            raise
        elapsed = time.perf_counter() - started
        now = self._clock()
        driver = self._driver
        fd = driver.fileno(conn)
        if self.dead_peer_timeout:
            detect_dead_peers(fd, self.dead_peer_timeout)
        slot.attach(conn, fd, driver.connection_id(conn), driver.transaction_probe(conn))
        slot.connect_seconds = elapsed
        draw = self._rng.random()
        life = lifetime.lifetime(self.max_lifetime, wait_timeout, self.lifetime_jitter, draw)
        slot.created, slot.expires = now, now + life
        if self.events.connect:
            self._announce(slot)
        self._admit(slot, elapsed, for_lease)
        return elapsed

    def _announce(self, slot: Slot) -> None:
        """The connect listeners run before the connection can be handed out (an ORM sets its
        session up here); if one fails, the connection is closed and the error raised."""
        try:
            fire(self.events.connect, self, slot)
        except BaseException:
            conn, slot.conn = slot.conn, None
            self._release_reserved([slot], failed=True)
            try:
                self._driver.close(conn)
            except Exception as exc:
                log.debug("closing a connection whose set-up failed raised %r", exc)
            raise

    def _connect(self, timeout: float) -> tuple[Any, float]:
        """Open and prepare one session; driver errors become DatabaseUnavailable here."""
        stage = "connect"
        driver = self._driver
        try:
            conn = driver.connect(
                self.url,
                connect_timeout=timeout,
                autocommit=self.autocommit,
                extra=self.options.connect_args,
            )
            stage = "session setup"
            try:
                wait_timeout = driver.session_wait_timeout(conn)
                driver.run_init_sql(conn, self.init_sql)
            except BaseException:
                driver.close(conn)
                raise
        except Exception as exc:
            if driver.is_driver_error(exc):
                raise translate_connect_error(driver, exc, self.url, stage=stage) from exc
            raise
        return conn, wait_timeout

    def _admit(self, slot: Slot, elapsed: float, for_lease: bool) -> None:
        with self._lock:
            slot.warming = False
            self.degraded = False
            self._silent_at = 0.0
            self._counters.connects += 1
            self._counters.connect_seconds += elapsed
            slot.move(SlotEvent.CONNECTED_FOR_LEASE if for_lease else SlotEvent.CONNECTED_FOR_IDLE)
            if for_lease:
                return
            if self._mode is PoolMode.SERVING:
                self._busy.discard(slot)
                self._idle.append(slot)
                self._wake_all()  # a checkout and a warm() may both wait for it (connects: rare)
                return
            self._mark_discarded(slot, _CLOSED)  # warmed while the pool was being closed
        self._close_all([slot])

    def _release_reserved(self, slots: list[Slot], *, failed: bool = False) -> None:
        with self._lock:
            for slot in slots:
                self._busy.discard(slot)
                slot.warming = False
                slot.move(SlotEvent.CONNECT_FAILED)
            if failed:
                self._counters.connect_errors += len(slots)
                self.degraded = True
            self._wake_all()

    # -- fork and exit ----------------------------------------------------------------------

    def _ensure_process(self) -> None:
        if self._pid != os.getpid():
            with fork.reset_lock:
                if self._pid != os.getpid():
                    self._after_fork_in_child()

    def _after_fork_in_child(self) -> None:
        """Drop every inherited slot without sending a byte; start this process's own pool."""
        inherited = [*self._idle, *self._busy]
        self._lock, self._cond = _new_lock_and_condition()
        self._waiters = 0
        self._idle, self._busy = [], set()
        self._mode = _transition(POOL_TRANSITIONS, self._mode, PoolEvent.FORK, "pool")
        self._pid, self._generation = os.getpid(), self._generation + 1
        self._counters = Counters()
        abandoned = [slot for slot in inherited if self._abandon(slot)]
        log.debug("pid %d: abandoned %d inherited connection(s)", self._pid, len(abandoned))
        if self.events.discard:
            for slot in abandoned:
                fire(self.events.discard, self, slot, DiscardReason.FORK)

    def _abandon(self, slot: Slot) -> bool:
        """Whether the slot held a connection (now pointed at /dev/null)."""
        was_idle, connected = slot.state is SlotState.IDLE, slot.conn is not None
        slot.move(SlotEvent.FORK)
        if not connected:
            return False  # a connect was in flight in another thread of the parent
        slot.discard_reason = DiscardReason.FORK
        self._counters.discards[DiscardReason.FORK.value] += 1
        self._driver.abandon(slot.conn, slot.fd)
        if was_idle:  # a leased one is released when its lease ends (see _checkin)
            self._driver.discard_abandoned(slot.conn)
            slot.conn = None
        return True

    def _close_at_exit(self, wait: float = 0.0) -> None:
        """``close()`` for exit hooks. By default they never wait for a lock: uWSGI runs its
        atexit hook inside the signal handler of a worker it stops, and that signal may have
        interrupted this very process in a pool call that holds the lock (waiting would hang
        the worker until the master kills it). Busy then: the connections close with the
        process, and the server counts them aborted. An orderly exit (a recycled worker,
        between requests) waits up to ``wait`` seconds: what holds the lock then is another
        thread (the upkeep's), for a moment."""
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
            self._move(PoolEvent.CLOSE)
            doomed = self._mark_idle_discarded()
        finally:
            self._lock.release()
        self._close_all(doomed)

    def _before_fork(self) -> None:
        self._lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._lock.release()

    # -- helpers ----------------------------------------------------------------------------

    def _move(self, event: PoolEvent) -> None:
        """Under the lock: change the pool's mode as the table says."""
        self._mode = _transition(POOL_TRANSITIONS, self._mode, event, "pool")

    def _drop_idle(self) -> int:
        with self._lock:
            doomed = self._mark_idle_discarded()
        self._close_all(doomed)
        return len(doomed)

    def _mark_idle_discarded(self) -> list[Slot]:
        return self._mark_idle_discarded_as(_CLOSED)

    def _mark_idle_discarded_as(self, reason: DiscardReason) -> list[Slot]:
        doomed = list(self._idle)
        for slot in doomed:
            self._mark_discarded(slot, reason)
        self._wake_all()
        return doomed

    def _wake_one(self) -> None:
        """Under the lock: let one blocked checkout re-check (free when nobody waits)."""
        if self._waiters:
            self._cond.notify()

    def _wake_all(self) -> None:
        if self._waiters:
            self._cond.notify_all()

    def _size(self) -> int:
        return len(self._idle) + len(self._busy)

    def _short_of_min_idle(self) -> bool:
        """Under the lock: fewer than ``min_idle`` connections idle or leased (a connect in
        flight for warm() is not one yet; one in flight for a checkout will be leased)."""
        return self._size() - self._warming() < self.min_idle

    def _warming(self) -> int:
        """Under the lock: connects in flight for warm() (they will be idle, not leased)."""
        return sum(1 for slot in self._busy if slot.warming)

    def _raise_if_closed(self) -> None:
        if self._mode is PoolMode.CLOSED:
            raise PoolClosed(f"pool is closed: {self!r}", pool=self)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _millis_until(deadline: float) -> int:
    """poll()'s timeout until a monotonic deadline: whole milliseconds, at least 1."""
    return max(1, int((deadline - time.monotonic()) * 1000))


def _deadline_exceeded(limit: Deadline, what: str) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"the request's deadline ({limit.seconds:g}s) passed: {what}", seconds=limit.seconds
    )


def _acquire(lock: threading.Lock, wait: float) -> bool:
    return lock.acquire(timeout=wait) if wait > 0 else lock.acquire(blocking=False)


def _new_lock_and_condition() -> tuple[threading.Lock, threading.Condition]:
    lock = threading.Lock()
    return lock, threading.Condition(lock)


def _unknown_arguments(unknown: dict[str, Any]) -> Exception:
    if "dialect" in unknown:  # create_engine(..., poolclass=postfork.Pool)
        return ConfigError(
            "postfork.Pool is not a SQLAlchemy pool class: use "
            "poolclass=postfork.sqlalchemy.PostforkPool"
        )
    known = ", ".join(("driver", *PoolOptions.names(), "clock", "rng"))
    return TypeError(f"Pool() got unknown argument(s) {', '.join(unknown)}; options: {known}")


def _reason(slot: Slot) -> str:
    return slot.discard_reason.value if slot.discard_reason else "?"
