"""The asyncio pool: ``AsyncPool`` and its ``AsyncLease``, a shell of I/O around ``PoolCore``.

This file is also the source of the thread pool (``pool.py``: ``Pool`` and ``Lease``), which
``scripts/async_to_sync.py`` writes from it and ``make test`` checks: one mechanism, two faces.
Here is only what does I/O or waits (connect, close, roll back, read a reply, park a checkout);
every decision is the core's. What only asyncio needs is marked for the generator to leave out:
binding to the loop that first runs the pool, and the refill task that does for it what the
upkeep thread does for the thread pool.
"""

from __future__ import annotations

import asyncio  # async only
import contextlib  # async only
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from ..drivers import AsyncDriver, load_async_driver, translate_connect_error
from ..errors import ConfigError, PoolTimeout
from ..url import DatabaseURL, parse_url
from .core import Attempt, PoolCore
from .deadline import WATCHDOG, Deadline, current_deadline
from .events import afire
from .lease import LeaseBase
from .options import DEFAULT_CHECKOUT_TIMEOUT, DEFAULT_DEAD_PEER_TIMEOUT, PoolOptions
from .slot import Slot
from .state import DiscardReason, PoolMode, SlotState
from .waiters import TaskWaiters

log = logging.getLogger("postfork.pool")

_CLOSED = DiscardReason.CLOSED
CLOSE_SETTLE = 0.5  # seconds, in all, that closing waits for replies still due (a rollback's)
_SERVING, _CONNECTING = PoolMode.SERVING, SlotState.CONNECTING  # bound once: hot-path tests
_getpid = os.getpid
REFILL_SLEEP = 5.0  # async only: the refill task re-reads the pool at least this often
MIN_SLEEP = 0.05  # async only: and never more often, but when a connection was discarded
RETRY_SLEEP = 1.0  # async only: after a failed refill (the database is down)


class AsyncPool(PoolCore):
    """A per-process pool of MySQL connections that survives ``fork()`` without sharing a socket.

    ``driver`` is the URL's choice (``mysql+asyncmy://``, ``mysql+aiomysql://``) or asyncmy.
    ``connect_args`` go to the driver's connect call as they are.

    ``clock`` (seconds, monotonic) and ``rng`` drive lifetimes and jitter and exist so tests can
    replace them; checkout timeouts always use real time.
    """

    _driver: AsyncDriver
    _waiters: TaskWaiters

    def __init__(
        self,
        url: str | DatabaseURL,
        *,
        driver: str | AsyncDriver | None = None,
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
        options = PoolOptions(
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
        url = parse_url(url)
        chosen = driver or url.driver
        adapter = driver if isinstance(driver, AsyncDriver) else load_async_driver(chosen)
        self._loop: asyncio.AbstractEventLoop | None = None  # async only
        self._refills: asyncio.Task[None] | None = None  # async only
        self._refill_due = asyncio.Event()  # async only
        super().__init__(url, adapter, options, clock=clock, rng=rng)

    def _new_waiters(self) -> TaskWaiters:
        return TaskWaiters()

    # -- public API -------------------------------------------------------------------------

    def connection(self) -> AsyncLease:
        """``async with pool.connection() as conn:`` leases a connection for the block."""
        return AsyncLease(self)

    async def warm(self) -> int:
        """Open connections until ``min_idle`` are idle or leased (within ``max_size``); returns
        how many it opened. Connects already in flight elsewhere (the upkeep) are waited for,
        so the pool is warm when this returns. A leased connection counts: it comes back when
        its request ends, and a spare opened beside it in a worker that serves one request at
        a time would never be used, yet held open against ``max_connections``."""
        self._ensure_process()
        self._bind_loop()  # async only
        opened = 0
        for _ in range(self.options.min_idle + 1):  # each round opens or waits for at least one
            with self._lock:
                reserved = self._reserve_for_warm()
            if reserved is None:
                return opened
            await self._open_reserved(reserved)
            opened += len(reserved)
            deadline = time.monotonic() + self.options.connect_timeout
            await self._until(self._connects_in_flight_wait, deadline)  # if they fail: again
        return opened

    async def _open_reserved(self, reserved: list[Slot]) -> None:
        for index, slot in enumerate(reserved):
            try:
                await self._open(slot, timeout=self.options.connect_timeout, for_lease=False)
            except BaseException:
                self._release_reserved(reserved[index + 1 :])
                raise

    async def maintain(self, *, connect: bool = True) -> None:
        """Off the request path: retire idle connections near the end of their life, refill.

        The upkeep calls it (after each response, and on its timer), so the next checkout
        finds a fresh connection instead of paying for a connect. ``connect=False`` retires
        but does not refill: the refill is left to the background, noted so that checkouts
        wait for it (a connect to a silent database must not hold a request).
        """
        self._ensure_process()
        with self._lock:
            doomed, short = self._retire(connect)
        self._leaks.log()
        await self._close_all(doomed)
        if short and connect:  # runs after every response: warm() only when there is work
            await self.warm()

    async def close(self) -> None:
        """Close idle connections now; leased ones are closed when their lease ends."""
        self._ensure_process()
        with self._lock:
            doomed = self._close_mode()
        await self._close_all(doomed)
        self._stop_refills()  # async only

    async def __aenter__(self) -> AsyncPool:
        await self.open()  # async only
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- checkout and checkin ---------------------------------------------------------------

    async def _checkout(self, limit: Deadline | None = None) -> tuple[Slot, float, float]:
        """Reserve a live idle slot or capacity for a new one; connect outside the lock.
        ``limit``: the request's deadline, when it comes before ``checkout_timeout``."""
        if self._pid != _getpid():
            self._ensure_process()
        if self._loop is not asyncio.get_running_loop():  # async only
            self._bind_loop()  # async only
        if limit is None:
            deadline, cut = time.monotonic() + self.options.checkout_timeout, None
        else:
            deadline, cut = self._checkout_deadline(limit)
        while True:
            slot, waited = await self._reserve(deadline, cut)
            if slot.state is _CONNECTING:
                timeout = self._connect_timeout_within(slot, deadline, cut)
                return slot, waited, await self._open(slot, timeout=timeout, for_lease=True)
            if not self._driver.reset_pending(slot.conn) or await self._settle(slot, deadline):
                return slot, waited, 0.0
            # its rollback's reply said it is dead: it was discarded; the next one

    async def _reserve(self, deadline: float, cut: Deadline | None) -> tuple[Slot, float]:
        doomed: list[Slot] = []
        try:
            with self._lock:
                slot = self._take_idle(doomed)
            if slot is not None:
                return slot, 0.0
            attempt = Attempt(deadline)
            return await self._until(self._reserve_now, attempt, doomed), attempt.waited
        except PoolTimeout as exc:
            raise self._checkout_failed(exc, cut) from None
        finally:
            if doomed:
                await self._close_all(doomed)
            if self._leaks.reports:
                self._leaks.log()

    async def _until(self, step: Callable[..., Any], *args: Any) -> Any:
        """Ask ``step`` under the lock until it answers with anything but a number of seconds;
        meanwhile wait that long, or until a slot is returned, freed or connected."""
        ticket, woken = None, False
        try:
            while True:
                with self._lock:
                    if ticket is not None:
                        woken, ticket = self._waiters.leave(ticket), None
                    answer = step(*args)
                    if answer.__class__ is not float:
                        return answer
                    ticket = self._waiters.enlist()
                await self._waiters.wait(ticket, answer)
        except BaseException:
            with self._lock:
                if (ticket is not None and self._waiters.leave(ticket)) or woken:
                    self._wake_one()  # pass on the wake-up this waiter took with it
            raise

    async def _settle(self, slot: Slot, deadline: float) -> bool:
        """Outside the lock: read the reply of the ROLLBACK sent when this connection was
        returned (long arrived, normally), then check it as any idle one; False if it is
        unusable (then discarded). A reply still missing is waited for until the checkout's
        deadline, never longer: a server gone silent since would hold the checkout."""
        reason: DiscardReason | None = None
        try:
            remaining = deadline - time.monotonic()
            if not await self._driver.finish_reset_within(slot.conn, slot.poller, remaining):
                log.info(
                    "discarding connection %d: no reply to its rollback within the checkout's "
                    "deadline (the server may be silent)",
                    slot.connection_id,
                )
                reason = DiscardReason.STALE
        except Exception as exc:
            log.info("discarding connection %d: its rollback failed: %r", slot.connection_id, exc)
            reason = DiscardReason.STALE
        if reason is None and slot.spoke():
            reason = DiscardReason.STALE
        if reason is None:
            return True
        self._settle_failed(slot, reason)
        await self._close_all([slot])
        return False

    async def _checkin(self, slot: Slot, exc: BaseException | None, invalid: bool) -> None:
        if self._pid != _getpid():
            self._ensure_process()
        if slot.generation != self._generation and self._inherited(slot):
            return
        reason = self._return_reason(slot, exc, invalid) if self._mode is _SERVING else _CLOSED
        interrupted: BaseException | None = None
        if reason is None and self._needs_rollback(slot, exc):
            try:  # sent without waiting for the reply: read at the next checkout
                await self._driver.rollback(slot.conn)
            except BaseException as failure:
                log.info(
                    "discarding connection %d: rollback on return failed: %r",
                    slot.connection_id,
                    failure,
                )
                reason = DiscardReason.ERROR
                interrupted = None if isinstance(failure, Exception) else failure
        with self._lock:
            kept = self._put_back(slot, reason)
        if not kept:
            await self._close_all([slot])
        if interrupted is not None:
            raise interrupted  # the slot is accounted for first

    # -- connecting -------------------------------------------------------------------------

    async def _open(self, slot: Slot, *, timeout: float, for_lease: bool) -> float:
        """Connect into a reserved slot; on failure release the capacity and raise."""
        started = time.perf_counter()
        try:
            conn, wait_timeout = await self._connect(timeout)
        except BaseException as exc:
            self._connect_failed(slot, exc, time.perf_counter() - started, timeout)
            raise
        elapsed = time.perf_counter() - started
        self._attach(slot, conn, wait_timeout, elapsed)
        if self.events.connect:
            await self._announce(slot)
        if not self._admit(slot, elapsed, for_lease):
            await self._close_all([slot])
        return elapsed

    async def _announce(self, slot: Slot) -> None:
        """The connect listeners run before the connection can be handed out (an ORM sets its
        session up here); if one fails, the connection is closed and the error raised."""
        try:
            await afire(self.events.connect, self, slot)
        except BaseException:
            conn = self._announce_failed(slot)
            try:
                self._driver.close_now(conn)
            except Exception as exc:
                log.debug("closing a connection whose set-up failed raised %r", exc)
            raise

    async def _connect(self, timeout: float) -> tuple[Any, float]:
        """Open and prepare one session; driver errors become DatabaseUnavailable here."""
        stage = "connect"
        driver = self._driver
        options = self.options
        try:
            conn = await driver.connect(
                self.url,
                connect_timeout=timeout,
                autocommit=options.autocommit,
                extra=options.connect_args,
            )
            stage = "session setup"
            try:  # init_sql first: it may set the session's wait_timeout
                await driver.run_init_sql(conn, options.init_sql)
                wait_timeout = self._known_wait_timeout()
                if wait_timeout is None:
                    wait_timeout = await driver.session_wait_timeout(conn)
                    self._learn_wait_timeout(wait_timeout)
            except BaseException:
                driver.close_now(conn)
                raise
        except Exception as exc:
            if driver.is_driver_error(exc):
                raise translate_connect_error(driver, exc, self.url, stage=stage) from exc
            raise
        return conn, wait_timeout

    async def _close_all(self, slots: list[Slot]) -> None:
        """Outside the lock: close discarded connections cleanly (they belong to this process),
        then tell the discard listeners. A ROLLBACK's reply still to read is read first, for
        ``CLOSE_SETTLE`` at most in all: a server that writes it after the socket has closed
        counts the client as aborted (``Aborted_clients``, a warning in its log)."""
        settle_until = time.monotonic() + CLOSE_SETTLE
        for slot, conn in self._detach_for_close(slots):
            try:
                if self._driver.reset_pending(conn):
                    remaining = settle_until - time.monotonic()
                    await self._driver.finish_reset_within(conn, slot.poller, remaining)
            except Exception as exc:
                log.debug(
                    "connection %d: its rollback failed as it closed: %r", slot.connection_id, exc
                )
            try:
                await self._driver.close(conn)
            except Exception as exc:
                log.debug("closing discarded connection %d raised %r", slot.connection_id, exc)
        self._announce_discards(slots)
        if slots:  # async only
            self._wake_refills()  # async only

    # async only: begin
    # -- asyncio's own: the loop, opening, the refill task ----------------------------------

    async def open(self, *, wait: bool = True) -> None:
        """Serve on the running loop: reopened if it was closed, its upkeep task started, and
        with ``wait`` warm before returning (connect errors raise: see ``postfork.asgi`` for
        a start-up that never does)."""
        self._ensure_process()
        with self._lock:
            self._reopen()
        self._bind_loop()
        self._start_refills()
        if wait:
            await self.warm()

    def _bind_loop(self) -> None:
        """The pool serves the loop that first runs it (a pool made at import time, with no
        loop yet, binds on first use). A closed or stopped loop's connections are dropped (its
        transports cannot run) and the pool serves the running one; two loops at once is an
        error: each loop needs a pool of its own."""
        loop = asyncio.get_running_loop()
        bound = self._loop
        if bound is loop:
            return
        if bound is not None and not bound.is_closed() and bound.is_running():
            raise ConfigError(
                f"this AsyncPool serves the event loop it first ran in ({bound!r}); it was "
                f"used from another one ({loop!r}): make one pool per loop (per thread)"
            )
        if bound is not None:
            self._drop_loop_connections()
        self._loop = loop
        self._start_refills()

    def _drop_loop_connections(self) -> None:
        """The connections of a loop that stopped: closed without it (COM_QUIT on the socket),
        leased ones released when returned (a new generation, as after fork)."""
        with self._lock:
            doomed = self._mark_idle_discarded_as(_CLOSED)
            self._generation += 1
            self._busy = {slot for slot in self._busy if slot.state is _CONNECTING}
        self._close_now(doomed)

    def _forget_process(self) -> None:
        """The parent's loop and refill task stay there; the task's copy here is never run,
        and collected it must not be reported as a task destroyed while pending."""
        if self._refills is not None:
            self._refills._log_destroy_pending = False  # type: ignore[attr-defined]
        self._loop, self._refills = None, None

    def _discard_now(self, slot: Slot) -> None:
        """A leased slot discarded without the loop (see ``AsyncLease.discard_now``)."""
        if slot.generation != self._generation and self._inherited(slot):
            return
        with self._lock:
            self._mark_discarded(slot, DiscardReason.ERROR)
        self._close_now([slot])

    def _start_refills(self) -> None:
        if self._refills is None or self._refills.done():
            self._refill_due = asyncio.Event()
            self._refills = asyncio.get_running_loop().create_task(
                self._run_refills(self._refill_due), name="postfork-refills"
            )

    def _stop_refills(self) -> None:
        task, self._refills = self._refills, None
        if task is not None and not task.done():
            task.cancel()

    def _wake_refills(self) -> None:
        """A connection was discarded: refill now, off the request path (a checkout that finds
        the database silent waits briefly for this connect instead of failing at once)."""
        if self._refills is not None and not self.closed:
            self._silence.note_refill_left()
            self._refill_due.set()

    async def _run_refills(self, due_now: asyncio.Event) -> None:
        """The upkeep as a task of the pool's loop (the thread pool's is a thread): sleeps
        until a connection enters its refresh window or one is discarded, then replaces or
        refills it off the request path; after a failure (the database is down) tries again
        a second later."""
        while not self.closed:
            try:
                await self.maintain()
            except Exception as exc:
                log.debug("pool upkeep failed (retrying in %g s): %r", RETRY_SLEEP, exc)
                await asyncio.sleep(RETRY_SLEEP)
                continue
            due = self.maintenance_due_in()
            sleep = REFILL_SLEEP if due is None else min(max(due, MIN_SLEEP), REFILL_SLEEP)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(sleep):  # never a busy loop, even when overdue
                    await due_now.wait()
            due_now.clear()

    # async only: end


class AsyncLease(LeaseBase):
    """One checkout of one connection; ``async with pool.connection() as conn:``."""

    __slots__ = ()
    _pool: AsyncPool

    async def __aenter__(self) -> Any:
        if self._slot is not None:
            raise RuntimeError("a Lease can be entered only once at a time")
        pool = self._pool
        limit = current_deadline()
        if limit is None:
            self._slot, self.wait_seconds, self.connect_seconds = await pool._checkout()
        else:  # within postfork.deadline(): wait and connect within it, cut off past it
            self._slot, self.wait_seconds, self.connect_seconds = await pool._checkout(limit)
            self._watch = WATCHDOG.watch(limit, self._slot.fd)
        self.connection_id = self._slot.connection_id
        if pool.events.on_lease:  # unused hooks cost this test and nothing else
            self._checked_out_at = time.perf_counter()
            try:
                for listener in pool.events.checkout:  # fire(), inline: once per checkout
                    listener(pool, self)
            except BaseException as exc:
                await self.__aexit__(type(exc), exc, exc.__traceback__)
                raise
        return self._slot.conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        slot, self._slot = self._slot, None
        if slot is None:
            return
        pool = self._pool
        if self._watch:
            if not WATCHDOG.unwatch(self._watch):  # the deadline cut it off: socket shut down
                self._invalid = self._timed_out = True
            self._watch = 0
        listened = self._checked_out_at  # 0.0: nobody listened when it began
        if listened:
            self.held_seconds = time.perf_counter() - listened
            self._checked_out_at = 0.0
        if self._timed_out:
            self._timed_out = False
            await pool._checkin(slot, exc, True)
            await pool._close_all(pool.note_silence(drop_idle=True))
        else:
            await pool._checkin(slot, exc, self._invalid)
        if listened:
            for listener in pool.events.checkin:
                listener(pool, self)

    # async only: begin
    def discard_now(self) -> None:
        """End the lease without awaiting anything, from outside the pool's loop (SQLAlchemy
        collecting a connection nobody returned): its connection is discarded, not returned."""
        slot, self._slot = self._slot, None
        if slot is None:
            return
        if self._watch:
            WATCHDOG.unwatch(self._watch)
            self._watch = 0
        self._pool._discard_now(slot)

    # async only: end

    async def is_alive(self) -> bool:
        """Whether the leased connection still works, without a round trip: open, and nothing
        waiting from the server (an ORM's health check; a pending ROLLBACK reply is read)."""
        slot = self._usable_slot()
        if slot is None:
            return False
        driver = self._pool._driver
        if driver.reset_pending(slot.conn):
            try:
                await driver.finish_reset(slot.conn)
            except Exception:
                return False
        return not slot.spoke()


def _unknown_arguments(unknown: dict[str, Any]) -> Exception:
    if "dialect" in unknown:  # create_engine(..., poolclass=postfork.AsyncPool)
        return ConfigError(
            "postfork.AsyncPool is not a SQLAlchemy pool class: use "
            "poolclass=postfork.sqlalchemy.AsyncPostforkPool"
        )
    known = ", ".join(("driver", *PoolOptions.names(), "clock", "rng"))
    return TypeError(f"AsyncPool() got unknown argument(s) {', '.join(unknown)}; options: {known}")
