"""The pool's small state objects on their own: the silence breaker, the leak watch, the
waiters of both shells, the fork hooks, and the generator that keeps the two shells one."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from postfork import DatabaseUnavailable, fork
from postfork.pool.core import PoolForkHooks
from postfork.pool.leaks import LeakWatch
from postfork.pool.silence import PROBE_WAIT, SILENCE_BACKOFF, SilenceBreaker
from postfork.pool.slot import Slot
from postfork.pool.state import SlotEvent
from postfork.pool.waiters import TaskWaiters, ThreadWaiters

from .test_pool import make_pool

ROOT = Path(__file__).resolve().parents[2]

# -- the silence breaker -----------------------------------------------------------------------


def test_a_database_that_never_went_silent_lets_every_checkout_connect() -> None:
    breaker = SilenceBreaker()
    assert not breaker.silent_at and not breaker.degraded


def test_after_silence_a_checkout_fails_fast_when_no_background_connect_is_coming() -> None:
    breaker = SilenceBreaker()
    breaker.note_silence()
    assert breaker.degraded and breaker.connect_would_wait(warming=False)  # within the backoff
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match="not answering"):
        breaker.wait_for_probe("db:3306", started + 5.0, started, warming=False)


def test_after_silence_a_checkout_waits_for_the_background_connect_at_most_probe_wait() -> None:
    breaker = SilenceBreaker()
    breaker.note_silence()
    now = time.monotonic()
    left = breaker.wait_for_probe("db:3306", now + 5.0, now, warming=True)
    assert 0 < left <= PROBE_WAIT
    # past PROBE_WAIT of waiting, it gives up even though the connect is still in flight
    with pytest.raises(DatabaseUnavailable):
        breaker.wait_for_probe("db:3306", now + 5.0, now - PROBE_WAIT, warming=True)


def test_a_refill_left_to_the_background_counts_as_a_connect_in_flight_for_probe_wait() -> None:
    breaker = SilenceBreaker()
    breaker.note_silence()
    breaker.note_refill_left()
    assert breaker.probing(warming=False)
    breaker.refill_left_at -= PROBE_WAIT
    assert not breaker.probing(warming=False)


def test_silence_backs_off_then_lets_one_checkout_try_again() -> None:
    breaker = SilenceBreaker()
    breaker.note_silence()
    breaker.silent_at -= SILENCE_BACKOFF
    assert not breaker.connect_would_wait(warming=False)  # this checkout may try a connect


def test_a_successful_connect_ends_the_silence() -> None:
    breaker = SilenceBreaker()
    breaker.note_silence()
    breaker.note_connected()
    assert not breaker.silent_at and not breaker.degraded


# -- the leak watch ----------------------------------------------------------------------------


def _leased_slot(connection_id: int, leased_at: float) -> Slot:
    slot = Slot(0)
    slot.move(SlotEvent.CONNECTED_FOR_LEASE)
    slot.connection_id, slot.leased_at = connection_id, leased_at
    return slot


def test_a_lease_held_past_leak_timeout_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    watch = LeakWatch(timeout=2.0)
    held, fresh = _leased_slot(7, leased_at=100.0), _leased_slot(8, leased_at=103.0)
    watch.scan([held, fresh], now=103.5)
    watch.scan([held, fresh], now=104.0)  # the second scan reports nothing new
    assert watch.reports == [(7, 3.5)]
    with caplog.at_level(logging.WARNING, logger="postfork.pool"):
        watch.log()
    assert "connection 7 has been leased for 3.5s (leak_timeout=2s)" in caplog.text
    assert watch.reports == []


def test_no_leak_timeout_means_no_scan_at_all() -> None:
    watch = LeakWatch(timeout=None)
    watch.scan([_leased_slot(1, leased_at=0.0)], now=1e9)
    assert watch.reports == []


# -- waiters -----------------------------------------------------------------------------------


def test_thread_waiters_wake_the_oldest_first_and_a_timed_out_one_leaves() -> None:
    waiters = ThreadWaiters()
    first, second = waiters.enlist(), waiters.enlist()
    waiters.wake_one()
    assert first.acquire(blocking=False) and not second.acquire(blocking=False)
    assert waiters.leave(first) is True  # woken: no longer queued
    started = time.monotonic()
    waiters.wait(second, 0.05)  # nobody wakes it: it times out
    assert time.monotonic() - started >= 0.04
    assert waiters.leave(second) is False and len(waiters) == 0


def test_thread_waiters_wake_all_releases_every_parked_thread() -> None:
    waiters = ThreadWaiters()
    tickets = [waiters.enlist() for _ in range(3)]
    woken = []
    threads = [
        threading.Thread(target=lambda t=t: (waiters.wait(t, 5.0), woken.append(t)))
        for t in tickets
    ]
    for thread in threads:
        thread.start()
    waiters.wake_all()
    for thread in threads:
        thread.join(5)
    assert len(woken) == 3


def test_a_task_that_timed_out_and_was_then_woken_learns_it_so_no_wake_up_is_lost() -> None:
    async def scenario() -> None:
        waiters = TaskWaiters()
        timed_out, waiting = waiters.enlist(), waiters.enlist()
        await waiters.wait(timed_out, 0.01)  # times out, still queued until it leaves
        waiters.wake_one()  # the oldest ticket: the one that timed out
        assert waiters.leave(timed_out) is True  # it learns it was woken, and looks again
        assert waiters.leave(waiting) is False and not waiting.done()

    asyncio.run(scenario())


# -- fork hooks --------------------------------------------------------------------------------


def test_fork_hooks_hold_their_pool_weakly_and_name_it_as_owner() -> None:
    pool = make_pool()
    hooks = pool.fork_hooks
    assert isinstance(hooks, PoolForkHooks) and hooks.owner is pool
    assert pool in fork.live_pools()
    del pool
    gc.collect()
    assert hooks.owner is None  # the registry's weak set keeps no pool alive
    hooks.before_fork(), hooks.after_fork_in_parent(), hooks.at_exit(0.0)  # no-ops now


def test_fork_hooks_hold_the_pools_lock_across_fork() -> None:
    pool = make_pool()
    pool.fork_hooks.before_fork()
    assert pool._lock.locked()
    pool.fork_hooks.after_fork_in_parent()
    assert not pool._lock.locked()


# -- the generated thread shell ------------------------------------------------------------------


def test_the_thread_pool_is_what_the_generator_makes_of_the_asyncio_pool() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "async_to_sync.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_generator_drops_asyncio_only_lines_and_blocks() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from async_to_sync import convert
    finally:
        sys.path.pop(0)
    source = (
        '"""doc"""\n'
        "import asyncio  # async only\n"
        "import time\n"
        "class AsyncThing:\n"
        "    async def go(self) -> None:\n"
        "        await self.step()\n"
        "        self._bind_loop()  # async only\n"
        "    # async only: begin\n"
        "    def _bind_loop(self) -> None: ...\n"
        "    # async only: end\n"
    )
    converted = convert(source)
    assert "import asyncio" not in converted and "_bind_loop" not in converted
    assert "class Thing:" in converted and "    def go(self) -> None:\n        self.step()\n" in (
        converted
    )


def test_a_parked_task_woken_as_it_is_cancelled_still_ends_cancelled() -> None:
    """asyncio.wait_for (3.11) returns normally when its future completes in the same loop
    iteration as the cancel: a refill task woken at the moment asyncio.run() cancelled it ran
    on, and asyncio.run waited for it for ever (seen in the asyncio fork matrix)."""

    async def scenario() -> None:
        waiters = TaskWaiters()
        ticket = waiters.enlist()
        parked = asyncio.create_task(waiters.wait(ticket, 5.0))
        await asyncio.sleep(0)  # it waits on its ticket now
        waiters.wake_one()  # woken...
        parked.cancel()  # ...and cancelled, in the same iteration
        with pytest.raises(asyncio.CancelledError):
            await parked

    asyncio.run(scenario())
