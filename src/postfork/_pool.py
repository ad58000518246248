"""The fork-aware connection pool: slots, leases, a LIFO idle stack and honest limits.

Pool state (the idle stack and the busy set) changes only under ``_lock``; connects,
rollbacks, closes and logging happen outside it. The only socket call made under the lock is
the zero-timeout ``poll()`` of the liveness check, which cannot block.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from . import _fork, _timing
from ._drivers import Driver, load_driver, translate_connect_error
from ._slot import Event, Slot, SlotState
from ._url import DatabaseURL, parse_url
from .errors import ConfigError, PoolClosed, PoolTimeout

log = logging.getLogger("postfork.pool")

DEFAULT_CHECKOUT_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_MAX_LIFETIME = 1800.0  # HikariCP's default maxLifetime: 30 minutes
SERVER_TIMEOUT_SHARE = 0.8  # retire at 80% of the session's wait_timeout at the latest
REFRESH_AHEAD = 0.1  # maintain() replaces idle connections in their last 10% of life
DISCARD_REASONS = ("stale", "lifetime", "error", "fork", "closed")


@dataclasses.dataclass
class _Counters:
    """Per-process counters; a forked child starts from zero (its pid says whose they are)."""

    connects: int = 0
    connect_errors: int = 0
    connect_seconds: float = 0.0
    checkouts: int = 0
    waits: int = 0
    wait_seconds: float = 0.0
    timeouts: int = 0
    discards: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(DISCARD_REASONS, 0)
    )

    def snapshot(self) -> dict[str, Any]:
        """A copy as a dict (``dataclasses.asdict`` deep-copies: 30x slower, and stats() runs
        after every request when metrics are on)."""
        copy = dict(self.__dict__)
        copy["discards"] = dict(self.discards)
        return copy


class Lease:
    """One checkout of one connection; use it as a context manager.

    After ``__enter__`` it tells what this checkout cost: ``wait_seconds`` blocked on a full
    pool and ``connect_seconds`` spent opening a connection (0.0 when one was reused).
    """

    __slots__ = (
        "_held_since",
        "_invalid",
        "_pool",
        "_request",
        "_slot",
        "connect_seconds",
        "connection_id",
        "wait_seconds",
    )

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._slot: Slot | None = None
        self._invalid = False
        self._request: _timing.RequestTiming | None = None
        self._held_since = 0.0
        self.wait_seconds = 0.0
        self.connect_seconds = 0.0
        self.connection_id = 0

    @property
    def paid_connect(self) -> bool:
        return self.connect_seconds > 0.0

    def invalidate(self) -> None:
        """Discard this connection on exit instead of returning it (e.g. after a read timeout)."""
        self._invalid = True

    def __enter__(self) -> Any:
        if self._slot is not None:
            raise RuntimeError("a Lease can be entered only once at a time")
        self._slot, self.wait_seconds, self.connect_seconds = self._pool._checkout()
        self.connection_id = self._slot.connection_id
        request = self._request = _timing.current()
        if request is not None:
            request.wait += self.wait_seconds
            request.connect += self.connect_seconds
            request.connects += self.connect_seconds > 0.0
            self._held_since = time.perf_counter()
        return self._slot.conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        slot, self._slot = self._slot, None
        if self._request is not None:
            self._request.db += time.perf_counter() - self._held_since
            self._request = None
        if slot is not None:
            self._pool._checkin(slot, exc, self._invalid)


class Pool:
    """A per-process pool of MySQL connections that survives ``fork()`` without sharing a socket.

    ``driver`` is "mysqlclient" (default, or the URL's ``mysql+pymysql://`` choice) or "pymysql".

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
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.url = parse_url(url)
        self._redacted_url = self.url.redacted()  # stats() runs after every request with metrics
        self.min_idle, self.max_size = _check_sizes(min_idle, max_size)
        self.checkout_timeout = _positive("checkout_timeout", checkout_timeout)
        self.connect_timeout = _positive(
            "connect_timeout",
            connect_timeout or self.url.options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        )
        self.max_lifetime = _positive("max_lifetime", max_lifetime or DEFAULT_MAX_LIFETIME)
        self.lifetime_jitter = _fraction("lifetime_jitter", lifetime_jitter)
        self.leak_timeout = (
            None if leak_timeout is None else _positive("leak_timeout", leak_timeout)
        )
        self.init_sql = _check_init_sql(init_sql)
        self.autocommit = bool(autocommit)
        self._driver: Driver = (
            driver
            if isinstance(driver, Driver)
            else load_driver(driver or self.url.driver or "mysqlclient")
        )
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock, self._cond = _new_lock_and_condition()
        self._waiters = 0  # checkouts blocked in _cond.wait(): notify only when someone waits
        self._leak_reports: list[tuple[int, float]] = []  # found under the lock, logged outside
        self._idle: list[Slot] = []  # LIFO: the most recently used connection is reused first
        self._busy: set[Slot] = set()  # IN_USE and CONNECTING: both count toward max_size
        self._closed = False
        self._keep_idle = True  # False in a server's master: it must pass no connection to workers
        self._installation: Any = None  # set by install(); kept alive with the pool
        self._pid = os.getpid()
        self._generation = 0
        self._counters = _Counters()
        _fork.register(self)

    # -- public API -------------------------------------------------------------------------

    def connection(self) -> Lease:
        """``with pool.connection() as conn:`` leases a DB-API connection for the block."""
        return Lease(self)

    def warm(self) -> int:
        """Open connections until ``min_idle`` are idle (within ``max_size``); returns how many."""
        self._ensure_process()
        with self._lock:
            self._raise_if_closed()
            if not self._keep_idle:
                return 0
            wanted = min(self.min_idle - len(self._idle), self.max_size - self._size())
            reserved = [self._reserve_new_slot() for _ in range(max(wanted, 0))]
        for index, slot in enumerate(reserved):
            try:
                self._open(slot, deadline=None, for_lease=False)
            except BaseException:
                self._release_reserved(reserved[index + 1 :])
                raise
        return len(reserved)

    def maintain(self) -> None:
        """Off the request path: retire idle connections near the end of their life, refill.

        Call it between requests (after a response is sent) so the next checkout finds a
        fresh connection instead of paying for a connect.
        """
        self._ensure_process()
        doomed: list[Slot] = []
        with self._lock:
            if self._closed or not self._keep_idle:
                return
            now = self._clock()
            for slot in list(self._idle):
                reason = self._idle_unusable_reason(slot, now, ahead=True)
                if reason is not None:
                    self._mark_discarded(slot, reason)
                    doomed.append(slot)
            self._find_leaks(now)
            short = len(self._idle) < self.min_idle and self._size() < self.max_size
        self._log_leaks()
        self._close_all(doomed)
        if short:  # runs after every response: warm() and its lock only when there is work
            self.warm()

    def close(self) -> None:
        """Close idle connections now; leased ones are closed when their lease ends."""
        self._ensure_process()
        with self._lock:
            self._closed = True
        self._drop_idle()

    def _close_at_exit(self) -> None:
        """``close()`` for exit hooks, which never wait for a lock: uWSGI runs its atexit hook
        inside the signal handler of a worker it stops, and that signal may have interrupted
        this very process in a pool call that holds the lock (waiting would hang the worker
        until the master kills it). Busy then: the connections close with the process."""
        if self._pid != os.getpid():
            if not _fork.reset_lock.acquire(blocking=False):
                return
            try:
                if self._pid != os.getpid():
                    self._after_fork_in_child()
            finally:
                _fork.reset_lock.release()
        if not self._lock.acquire(blocking=False):
            log.debug("pid %d: pool busy at exit: not closing its connections", self._pid)
            return
        try:
            self._closed = True
            doomed = list(self._idle)
            for slot in doomed:
                self._mark_discarded(slot, "closed")
            self._wake_all()
        finally:
            self._lock.release()
        self._close_all(doomed)

    def _enter_master_mode(self) -> None:
        """In a server's master: close idle connections cleanly and keep none from now on, so
        workers inherit nothing. Every forked child leaves this mode (see _after_fork_in_child)."""
        self._ensure_process()
        with self._lock:
            self._keep_idle = False
        self._drop_idle()

    def _drop_idle(self) -> None:
        with self._lock:
            doomed = list(self._idle)
            for slot in doomed:
                self._mark_discarded(slot, "closed")
            self._wake_all()
        self._close_all(doomed)

    @property
    def closed(self) -> bool:
        return self._closed

    def is_disconnect(self, exc: BaseException) -> bool:
        """Whether a driver error raised inside a lease means the connection is gone."""
        return self._driver.is_disconnect(exc)

    def stats(self) -> dict[str, Any]:
        """A snapshot of this process's pool: sizes, connect costs, waits, discards by reason."""
        self._ensure_process()
        with self._lock:
            counters = self._counters.snapshot()
            connecting = sum(1 for slot in self._busy if slot.state is SlotState.CONNECTING)
            sizes = {"idle": len(self._idle), "in_use": len(self._busy) - connecting}
            sizes["connecting"] = connecting
        return {
            "pid": self._pid,
            "generation": self._generation,
            "driver": self._driver.name,
            "url": self._redacted_url,
            "min_idle": self.min_idle,
            "max_size": self.max_size,
            "closed": self._closed,
            **sizes,
            **counters,
        }

    def __repr__(self) -> str:
        return (
            f"<Pool {self._driver.name} {self._redacted_url} pid={self._pid} "
            f"idle={len(self._idle)} in_use={len(self._busy)} max_size={self.max_size}"
            f"{' closed' if self._closed else ''}>"
        )

    # -- checkout and checkin ---------------------------------------------------------------

    def _checkout(self) -> tuple[Slot, float, float]:
        """Reserve a live idle slot or capacity for a new one; connect outside the lock."""
        self._ensure_process()
        deadline = time.monotonic() + self.checkout_timeout
        doomed: list[Slot] = []
        try:
            slot, waited = self._reserve(deadline, doomed)
        finally:
            self._close_all(doomed)
            if self._leak_reports:
                self._log_leaks()
        if slot.state is SlotState.CONNECTING:
            return slot, waited, self._open(slot, deadline=deadline, for_lease=True)
        return slot, waited, 0.0

    def _reserve(self, deadline: float, doomed: list[Slot]) -> tuple[Slot, float]:
        waiting_since: float | None = None
        with self._lock:
            while True:
                self._raise_if_closed()
                slot = self._pop_live_idle(doomed) or self._reserve_new_slot_if_room()
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
        while self._idle:
            slot = self._idle.pop()
            reason = self._idle_unusable_reason(slot, now, ahead=False)
            if reason is None:
                slot.move(Event.CHECKOUT)
                self._busy.add(slot)
                return slot
            self._mark_discarded(slot, reason)
            doomed.append(slot)
        return None

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
            raise PoolTimeout(self._timeout_message(now - (waiting_since or now)), pool=self)
        if waiting_since is None:
            self._counters.waits += 1
            waiting_since = now
            self._find_leaks(self._clock())
        self._waiters += 1
        try:
            self._cond.wait(deadline - now)
        finally:
            self._waiters -= 1
        return waiting_since

    def _timeout_message(self, waited: float) -> str:
        return (
            f"no connection available within checkout_timeout={self.checkout_timeout:g}s: "
            f"all max_size={self.max_size} connections are in use "
            f"(waited {waited:.2f}s, pid {self._pid})"
        )

    def _checkin(self, slot: Slot, exc: BaseException | None, invalid: bool) -> None:
        self._ensure_process()
        if slot.generation != self._generation:
            # Leased when this process was forked: the fd already points at /dev/null.
            self._driver.discard_abandoned(slot.conn)
            slot.conn = None
            return
        keep = self._keep_idle and not self._closed
        reason = self._return_reason(slot, exc, invalid) if keep else "closed"
        with self._lock:
            if reason is None and (self._closed or not self._keep_idle):
                reason = "closed"
            if reason is None:
                self._busy.discard(slot)
                slot.move(Event.CHECKIN)
                self._idle.append(slot)
                self._wake_one()
                return
            self._mark_discarded(slot, reason)
        self._close_all([slot])

    def _return_reason(self, slot: Slot, exc: BaseException | None, invalid: bool) -> str | None:
        """Why this returning connection must not be reused, or None; rolls back if needed."""
        if invalid or (exc is not None and not isinstance(exc, Exception)):
            return "error"  # interrupted mid-protocol (KeyboardInterrupt, timeout): state unknown
        if exc is not None and self._driver.is_disconnect(exc):
            return "error"
        if not self._driver.is_open(slot.conn):
            return "error"  # closed by the caller inside the lease
        if self._clock() >= slot.expires:
            return "lifetime"  # closing rolls back any open transaction on the server
        return self._reset(slot, force_rollback=exc is not None)

    def _reset(self, slot: Slot, *, force_rollback: bool) -> str | None:
        try:
            if force_rollback or slot.in_transaction():
                self._driver.rollback(slot.conn)
        except Exception as exc:
            log.info(
                "discarding connection %d: rollback on return failed: %r", slot.connection_id, exc
            )
            return "error"
        return None

    # -- liveness, lifetime, discards -------------------------------------------------------

    def _idle_unusable_reason(self, slot: Slot, now: float, *, ahead: bool) -> str | None:
        margin = (slot.expires - slot.created) * REFRESH_AHEAD if ahead else 0.0
        if now >= slot.expires - margin:
            return "lifetime"
        if slot.server_spoke():
            return "stale"  # the server closed it or sent an error (KILL, shutdown, timeout)
        return None

    def _mark_discarded(self, slot: Slot, reason: str) -> None:
        """Under the lock: forget the slot and count why. The caller closes it outside."""
        if slot in self._busy:
            self._busy.discard(slot)
        elif slot in self._idle:
            self._idle.remove(slot)
        slot.move(Event.DISCARD)
        slot.discard_reason = reason
        self._counters.discards[reason] += 1
        self._wake_one()

    def _close_all(self, slots: list[Slot]) -> None:
        """Outside the lock: close discarded connections cleanly (they belong to this process)."""
        for slot in slots:
            conn, slot.conn = slot.conn, None
            if conn is None:
                continue
            log.debug("closing connection %d (%s)", slot.connection_id, slot.discard_reason)
            try:
                self._driver.close(conn)
            except Exception as exc:
                log.debug("closing discarded connection %d raised %r", slot.connection_id, exc)

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
        except BaseException:
            self._release_reserved([slot], failed=True)
            raise
        elapsed = time.perf_counter() - started
        now = self._clock()
        driver = self._driver
        slot.attach(
            conn, driver.fileno(conn), driver.connection_id(conn), driver.transaction_probe(conn)
        )
        slot.created, slot.expires = now, now + self._lifetime(wait_timeout)
        self._admit(slot, elapsed, for_lease)
        return elapsed

    def _connect(self, timeout: float) -> tuple[Any, float]:
        """Open and prepare one session; driver errors become DatabaseUnavailable here."""
        stage = "connect"
        try:
            conn = self._driver.connect(
                self.url, connect_timeout=timeout, autocommit=self.autocommit
            )
            stage = "session setup"
            try:
                wait_timeout = self._driver.session_wait_timeout(conn)
                self._driver.run_init_sql(conn, self.init_sql)
            except BaseException:
                self._driver.close(conn)
                raise
        except Exception as exc:
            if self._driver.is_driver_error(exc):
                raise translate_connect_error(self._driver, exc, self.url, stage=stage) from exc
            raise
        return conn, wait_timeout

    def _admit(self, slot: Slot, elapsed: float, for_lease: bool) -> None:
        with self._lock:
            self._counters.connects += 1
            self._counters.connect_seconds += elapsed
            slot.move(Event.CONNECTED_FOR_LEASE if for_lease else Event.CONNECTED_FOR_IDLE)
            if for_lease:
                return
            if not self._closed:
                self._busy.discard(slot)
                self._idle.append(slot)
                self._wake_one()
                return
            self._mark_discarded(slot, "closed")  # warmed while the pool was being closed
        self._close_all([slot])

    def _release_reserved(self, slots: list[Slot], *, failed: bool = False) -> None:
        with self._lock:
            for slot in slots:
                self._busy.discard(slot)
                slot.move(Event.CONNECT_FAILED)
            self._counters.connect_errors += len(slots) if failed else 0
            self._wake_all()

    def _lifetime(self, wait_timeout: float) -> float:
        """Below the server's idle limit and our own cap, minus per-connection random jitter."""
        base = min(self.max_lifetime, wait_timeout * SERVER_TIMEOUT_SHARE)
        return base * (1.0 - self.lifetime_jitter * self._rng.random())

    # -- fork -------------------------------------------------------------------------------

    def _ensure_process(self) -> None:
        if self._pid != os.getpid():
            with _fork.reset_lock:
                if self._pid != os.getpid():
                    self._after_fork_in_child()

    def _after_fork_in_child(self) -> None:
        """Drop every inherited slot without sending a byte; start this process's own pool."""
        inherited = [*self._idle, *self._busy]
        self._lock, self._cond = _new_lock_and_condition()
        self._waiters = 0
        self._idle, self._busy = [], set()
        self._keep_idle = True
        self._pid, self._generation = os.getpid(), self._generation + 1
        self._counters = _Counters()
        for slot in inherited:
            self._abandon(slot)
        log.debug("pid %d: abandoned %d inherited connection(s)", self._pid, len(inherited))

    def _abandon(self, slot: Slot) -> None:
        was_idle, connected = slot.state is SlotState.IDLE, slot.conn is not None
        slot.move(Event.FORK)
        if not connected:
            return  # a connect was in flight in another thread of the parent
        self._counters.discards["fork"] += 1
        self._driver.abandon(slot.conn, slot.fd)
        if was_idle:  # a leased one is released when its lease ends (see _checkin)
            self._driver.discard_abandoned(slot.conn)
            slot.conn = None

    def _before_fork(self) -> None:
        self._lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._lock.release()

    # -- helpers ----------------------------------------------------------------------------

    def _wake_one(self) -> None:
        """Under the lock: let one blocked checkout re-check (free when nobody waits)."""
        if self._waiters:
            self._cond.notify()

    def _wake_all(self) -> None:
        if self._waiters:
            self._cond.notify_all()

    def _size(self) -> int:
        return len(self._idle) + len(self._busy)

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise PoolClosed(f"pool is closed: {self!r}", pool=self)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _new_lock_and_condition() -> tuple[threading.Lock, threading.Condition]:
    lock = threading.Lock()
    return lock, threading.Condition(lock)


def _check_sizes(min_idle: int, max_size: int) -> tuple[int, int]:
    if not isinstance(max_size, int) or max_size < 1:
        raise ConfigError(f"max_size must be a positive integer, got {max_size!r}")
    if not isinstance(min_idle, int) or not 0 <= min_idle <= max_size:
        raise ConfigError(
            f"min_idle must be an integer between 0 and max_size={max_size}, got {min_idle!r}"
        )
    return min_idle, max_size


def _positive(name: str, value: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value < float("inf")
    ):
        raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ConfigError(f"{name} must be a fraction in [0, 1), got {value!r}")
    return float(value)


def _check_init_sql(statements: Iterable[str]) -> tuple[str, ...]:
    if isinstance(statements, str):
        statements = (statements,)
    result = tuple(statements)
    if not all(isinstance(statement, str) and statement.strip() for statement in result):
        raise ConfigError("init_sql must be a sequence of non-empty SQL strings")
    return result
