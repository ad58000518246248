"""The asyncio pool without a server: the fake sessions behind an asyncio driver, real tasks and
loops. What both shells decide alike is tested once, on the thread pool (test_pool.py); here is
what asyncio adds: tasks parked and woken, cancellation, the loop a pool serves, the refill
task, awaited connect listeners, and fork with a pool a loop once ran."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from postfork import AsyncPool, ConfigError, PoolClosed, PoolTimeout, parse_url
from postfork.drivers.aio import AsyncDriver

from .fakes import FakeAsyncDriver

URL = "mysql://app:topsecret-pw@db.example:3306/shop"
PARSED = parse_url(URL)
T = TypeVar("T")


def make_pool(driver: FakeAsyncDriver | None = None, **kwargs: Any) -> AsyncPool:
    kwargs.setdefault("min_idle", 0)
    return AsyncPool(URL, driver=driver or FakeAsyncDriver(), **kwargs)


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())  # type: ignore[arg-type]


async def lease_ident(pool: AsyncPool) -> int:
    async with pool.connection() as conn:
        return int(conn.ident)


def test_idle_connections_are_reused_last_in_first_out() -> None:
    async def scenario() -> None:
        pool = make_pool(max_size=3)
        leases = [pool.connection() for _ in range(3)]
        for lease in leases:
            await lease.__aenter__()
        for lease in leases:  # returned 1, 2, 3
            await lease.__aexit__(None, None, None)
        assert [await lease_ident(pool) for _ in range(3)] == [3, 3, 3]
        assert pool.stats()["connects"] == 3

    run(scenario)


def test_no_more_than_max_size_and_a_bounded_timeout_that_names_the_limit() -> None:
    async def scenario() -> None:
        pool = make_pool(max_size=1, checkout_timeout=0.05)
        async with pool.connection():
            with pytest.raises(PoolTimeout, match="max_size=1"):
                async with pool.connection():
                    pass
        assert pool.stats()["timeouts"] == 1

    run(scenario)


def test_a_parked_task_gets_the_connection_another_task_returns() -> None:
    async def scenario() -> None:
        pool = make_pool(max_size=1, checkout_timeout=5)
        lease = pool.connection()
        await lease.__aenter__()
        waiter = asyncio.create_task(lease_ident(pool))
        await asyncio.sleep(0.02)
        assert not waiter.done()
        await lease.__aexit__(None, None, None)
        assert await asyncio.wait_for(waiter, 5) == 1
        stats = pool.stats()
        assert stats["waits"] == 1 and stats["connects"] == 1 and stats["wait_seconds"] > 0

    run(scenario)


def test_concurrent_tasks_never_exceed_max_size_or_share_a_connection() -> None:
    async def scenario() -> None:
        driver = FakeAsyncDriver()
        driver.connect_delay = 0.001
        pool = make_pool(driver, max_size=3, checkout_timeout=10)
        in_use: set[int] = set()
        peak = 0

        async def worker() -> None:
            nonlocal peak
            for _ in range(20):
                async with pool.connection() as conn:
                    assert conn.ident not in in_use
                    in_use.add(conn.ident)
                    peak = max(peak, len(in_use))
                    await asyncio.sleep(0)
                    in_use.discard(conn.ident)

        await asyncio.gather(*(worker() for _ in range(8)))
        assert peak <= 3 and len(driver.opened) <= 3
        stats = pool.stats()
        assert stats["in_use"] == 0 and stats["checkouts"] == 160

    run(scenario)


def test_the_rollback_on_return_is_sent_without_waiting_and_read_at_the_next_checkout() -> None:
    async def scenario() -> None:
        pool = make_pool(max_size=1)
        async with pool.connection() as conn:
            conn.in_transaction = True
        assert conn.rollbacks == 1 and conn._postfork_reset_pending
        async with pool.connection() as again:
            assert again is conn and not conn._postfork_reset_pending

    run(scenario)


def test_closing_reads_a_rollback_reply_still_due_before_the_socket_closes() -> None:
    async def scenario() -> None:
        pool = make_pool(max_size=1)
        async with pool.connection() as conn:
            conn.in_transaction = True
        assert conn._postfork_reset_pending
        await pool.close()
        assert conn.closed and not conn._postfork_reset_pending

    run(scenario)


def test_a_task_cancelled_mid_query_discards_its_connection_and_nothing_else() -> None:
    async def scenario() -> None:
        pool = make_pool(max_size=2)
        started = asyncio.Event()

        async def request() -> None:
            async with pool.connection():
                started.set()
                await asyncio.sleep(10)  # the "query" a disconnecting client cancels

        async with pool.connection() as other:
            task = asyncio.create_task(request())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        stats = pool.stats()
        assert stats["discards"]["error"] == 1 and stats["in_use"] == 0 and stats["idle"] == 1
        assert await lease_ident(pool) == other.ident  # the other connection is untouched

    run(scenario)


def test_a_task_cancelled_while_parked_passes_its_turn_on() -> None:
    async def scenario() -> None:
        pool = make_pool(max_size=1, checkout_timeout=5)
        lease = pool.connection()
        await lease.__aenter__()
        cancelled = asyncio.create_task(lease_ident(pool))
        patient = asyncio.create_task(lease_ident(pool))
        await asyncio.sleep(0.02)
        cancelled.cancel()
        await lease.__aexit__(None, None, None)
        assert await asyncio.wait_for(patient, 5) == 1
        assert len(pool._waiters) == 0

    run(scenario)


def test_an_awaitable_connect_listener_runs_before_the_connection_is_handed_out() -> None:
    async def scenario() -> None:
        pool = make_pool()
        prepared: list[int] = []

        async def set_up(pool: AsyncPool, slot: Any) -> None:
            await asyncio.sleep(0)
            prepared.append(slot.connection_id)
            slot.info["ready"] = True

        pool.events.listen("connect", set_up)
        async with pool.connection() as conn:
            assert prepared == [conn.ident]

    run(scenario)


def test_a_failing_connect_listener_fails_the_checkout_and_closes_the_connection() -> None:
    async def scenario() -> None:
        driver = FakeAsyncDriver()
        pool = make_pool(driver)

        async def refuse(pool: AsyncPool, slot: Any) -> None:
            raise RuntimeError("session set-up failed")

        pool.events.listen("connect", refuse)
        with pytest.raises(RuntimeError, match="set-up failed"):
            async with pool.connection():
                pass
        assert driver.opened[0].closed and pool.stats()["in_use"] == 0

    run(scenario)


def test_a_pool_made_without_a_loop_binds_to_the_loop_that_first_runs_it() -> None:
    pool = make_pool(max_size=2)  # module level: no loop yet

    async def use() -> int:
        return await lease_ident(pool)

    async def hold(started: threading.Event, release: threading.Event) -> None:
        await lease_ident(pool)  # bound here
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.005)

    started, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=lambda: asyncio.run(hold(started, release)))
    thread.start()
    try:
        assert started.wait(5)
        with pytest.raises(ConfigError, match="one pool per loop"):
            run(use)  # another loop while the first runs: a clear error, not a hang
    finally:
        release.set()
        thread.join(5)
    # the first loop is closed now: the pool serves the next one, its old connection closed
    old = pool._driver.opened[0]  # type: ignore[attr-defined]
    assert run(use) == 2
    assert old.closed


def test_the_refill_task_replaces_a_discarded_connection_off_the_request_path() -> None:
    async def scenario() -> None:
        driver = FakeAsyncDriver()
        pool = make_pool(driver, min_idle=1, max_size=2)
        await pool.open()
        assert pool.stats()["idle"] == 1
        lease = pool.connection()
        await lease.__aenter__()
        lease.invalidate()  # e.g. a disconnect error inside the request
        await lease.__aexit__(None, None, None)
        for _ in range(100):  # the refill task connects; no checkout asked for it
            if pool.stats()["idle"] == 1:
                break
            await asyncio.sleep(0.01)
        stats = pool.stats()
        assert stats["idle"] == 1 and stats["connects"] == 2 and stats["checkouts"] == 1
        async with pool.connection() as conn:
            assert conn.ident == 2
        await pool.close()

    run(scenario)


def test_a_closed_pool_refuses_checkouts_until_opened_again() -> None:
    async def scenario() -> None:
        driver = FakeAsyncDriver()
        pool = make_pool(driver, min_idle=1)
        async with pool:  # open() warms, close() on the way out (an app's lifespan)
            assert pool.stats()["idle"] == 1
        assert driver.opened[0].closed
        with pytest.raises(PoolClosed):
            async with pool.connection():
                pass
        await pool.open()  # the app's next lifespan
        assert await lease_ident(pool) == 2
        await pool.close()

    run(scenario)


def test_a_child_abandons_the_connections_a_loop_opened_in_its_parent() -> None:
    driver = FakeAsyncDriver()
    pool = make_pool(driver, min_idle=2, max_size=2)
    run(pool.open)  # the loop that warmed it is closed now, as in a preloading master
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            fresh = run(lambda: lease_ident(pool))
            report = {
                "stats": pool.stats(),
                "fresh": fresh,
                "closed_only_on_devnull": [c.closed_on_devnull for c in driver.opened[:2]],
            }
            os.write(write_end, json.dumps(report).encode())
        except BaseException as exc:
            os.write(write_end, json.dumps({"child_error": repr(exc)}).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    report = json.loads(os.read(read_end, 65536))
    assert "child_error" not in report, report
    assert report["stats"]["discards"]["fork"] == 2 and report["fresh"] == 3
    assert report["closed_only_on_devnull"] == [True, True]
    assert not any(conn.closed for conn in driver.opened[:2])  # the parent's sessions live on


def test_the_refill_task_of_a_warm_idle_pool_sleeps_instead_of_spinning() -> None:
    """The refill task woke itself after every maintain() (its own empty close woke it), and a
    wait on a set event never suspends: it starved every other task of its loop."""

    async def scenario() -> None:
        pool = make_pool(min_idle=1, max_size=2)
        rounds = 0
        maintain = pool.maintain

        async def counted(**kwargs: Any) -> None:
            nonlocal rounds
            rounds += 1
            await maintain(**kwargs)

        pool.maintain = counted  # type: ignore[method-assign]
        await pool.open()
        ticks = 0
        for _ in range(20):  # the loop must stay free for other tasks
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 20 and rounds <= 3, rounds
        await pool.close()

    run(scenario)


def test_a_cancel_the_drivers_connect_swallowed_still_cancels_the_task() -> None:
    """asyncmy and aiomysql connect through asyncio.wait_for, which (Python 3.11) returns
    normally when the connect completes as the task is cancelled: a refill task cancelled by
    asyncio.run() at that moment ran on for ever (seen in the asyncio fork matrix)."""

    class SwallowingDriver(FakeAsyncDriver):
        connect = AsyncDriver.connect  # the adapters' own connect, around open()
        opened_now = asyncio.Event()

        async def open(self, **kwargs: Any) -> Any:
            self.opened_now.set()
            with contextlib.suppress(asyncio.CancelledError):  # as 3.11's wait_for can
                await asyncio.sleep(10)
            return self.sync.connect(PARSED, connect_timeout=5, autocommit=False)

    async def scenario() -> None:
        driver = SwallowingDriver()
        pool = make_pool(driver)
        checkout = asyncio.create_task(lease_ident(pool))
        await driver.opened_now.wait()
        checkout.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(checkout, 5)
        assert driver.opened[0].closed and pool.stats()["connecting"] == 0

    run(scenario)
