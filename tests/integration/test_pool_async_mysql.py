"""The asyncio pool against a real server, both asyncio drivers (asyncmy, aiomysql)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

import postfork
from postfork import AsyncPool, DatabaseUnavailable, DatabaseURL
from postfork_tools.embedded import EmbeddedMariaDB

from .conftest import admin_query

T = TypeVar("T")
ASYNC_DRIVERS = ("asyncmy", "aiomysql")


@pytest.fixture(params=ASYNC_DRIVERS)
def async_driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())  # type: ignore[arg-type]


async def scalar(conn: Any, sql: str) -> Any:
    async with conn.cursor() as cursor:
        await cursor.execute(sql)
        row = await cursor.fetchone()
    return row[0]


async def session_status(conn: Any, name: str) -> int:
    async with conn.cursor() as cursor:
        await cursor.execute(f"SHOW SESSION STATUS LIKE '{name}'")
        return int((await cursor.fetchone())[1])


def test_checkout_runs_queries_and_reuses_one_warm_session(
    database_url: DatabaseURL, async_driver: str
) -> None:
    async def scenario() -> None:
        async with AsyncPool(database_url, driver=async_driver, min_idle=1, max_size=2) as pool:
            assert pool.stats()["idle"] == 1  # open() warmed it
            ids = set()
            for _ in range(5):
                async with pool.connection() as conn:
                    ids.add(await scalar(conn, "SELECT CONNECTION_ID()"))
                    assert await scalar(conn, "SELECT 1 + 1") == 2
            assert len(ids) == 1 and pool.stats()["connects"] == 1

    run(scenario)


def test_an_open_transaction_is_rolled_back_on_return_without_waiting_for_the_reply(
    database_url: DatabaseURL, async_driver: str
) -> None:
    async def scenario() -> None:
        async with AsyncPool(database_url, driver=async_driver, min_idle=0, max_size=1) as pool:
            async with pool.connection() as conn:
                assert await scalar(conn, "SELECT 1") == 1  # autocommit: no transaction
            assert not pool._driver.reset_pending(conn)  # nothing to roll back: nothing sent
            async with pool.connection() as conn:
                async with conn.cursor() as cursor:
                    await cursor.execute("BEGIN")
                    await cursor.execute("SELECT 1")
                before = await session_status(conn, "Com_rollback")
            assert pool._driver.reset_pending(conn)  # sent; its reply is read at checkout
            async with pool.connection() as again:
                assert again is conn and not pool._driver.in_transaction(conn)
                assert await session_status(conn, "Com_rollback") == before + 1

    run(scenario)


def test_a_session_the_server_killed_is_left_at_checkout_without_a_round_trip(
    database_url: DatabaseURL, async_driver: str
) -> None:
    async def scenario() -> None:
        async with AsyncPool(database_url, driver=async_driver, min_idle=1, max_size=2) as pool:
            async with pool.connection() as conn:
                killed = await scalar(conn, "SELECT CONNECTION_ID()")
            admin_query(database_url, f"KILL {killed}")
            await asyncio.sleep(0.1)  # the loop reads the server's close
            async with pool.connection() as conn:
                assert await scalar(conn, "SELECT CONNECTION_ID()") != killed
            assert pool.stats()["discards"]["stale"] == 1

    run(scenario)


def test_lifetimes_stay_below_the_sessions_wait_timeout(
    database_url: DatabaseURL, async_driver: str
) -> None:
    async def scenario() -> None:
        pool = AsyncPool(
            database_url,
            driver=async_driver,
            min_idle=2,
            max_size=2,
            init_sql=["SET SESSION wait_timeout = 10"],
        )
        async with pool:
            lifetimes = [slot.expires - slot.created for slot in pool._idle]
        assert len(lifetimes) == 2 and all(6.9 < life <= 8.0 for life in lifetimes)
        assert lifetimes[0] != lifetimes[1]  # jitter: they do not expire together

    run(scenario)


def test_a_task_cancelled_mid_query_discards_that_connection_and_nothing_else(
    database_url: DatabaseURL, async_driver: str
) -> None:
    async def scenario() -> None:
        async with AsyncPool(database_url, driver=async_driver, min_idle=2, max_size=2) as pool:
            started = asyncio.Event()

            async def slow_request() -> None:
                async with pool.connection() as conn:
                    started.set()
                    await scalar(conn, "SELECT SLEEP(5)")

            task = asyncio.create_task(slow_request())
            await started.wait()
            await asyncio.sleep(0.1)  # the query is on the server now
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            stats = pool.stats()
            assert stats["discards"]["error"] == 1 and stats["in_use"] == 0
            async with pool.connection() as conn:  # the other session serves at once
                assert await scalar(conn, "SELECT 1") == 1
            assert pool.stats()["connects"] <= 3

    run(scenario)


def test_a_deadline_cuts_a_query_the_server_never_answers(
    database_url: DatabaseURL, async_driver: str
) -> None:
    async def scenario() -> None:
        async with AsyncPool(database_url, driver=async_driver, min_idle=1, max_size=2) as pool:
            started = time.monotonic()
            with pytest.raises(Exception) as info, postfork.deadline(0.5):  # the driver's error
                async with pool.connection() as conn:
                    await scalar(conn, "SELECT SLEEP(5)")
            elapsed = time.monotonic() - started
            assert elapsed < 0.5 + 1.0, elapsed  # the deadline, not the query
            assert pool.is_disconnect(info.value), info.value
            assert pool.stats()["discards"]["error"] == 1

    run(scenario)


def test_wrong_credentials_give_a_clear_error_without_the_password(
    database_url: DatabaseURL, async_driver: str
) -> None:
    url = f"mysql://nobody:wrong-secret-pw@{database_url.host}:{database_url.port}/test"

    async def scenario() -> None:
        pool = AsyncPool(url, driver=async_driver, min_idle=0)
        with pytest.raises(DatabaseUnavailable) as info:
            async with pool.connection():
                pass
        message = str(info.value)
        assert "access denied" in message and "wrong-secret-pw" not in message
        assert info.value.code in (1045, 1698)

    run(scenario)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word (no MySQL greeting)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    for sock in accepted:
        sock.close()
    listener.close()


def test_a_server_that_never_greets_costs_connect_timeout_then_fails_fast(
    silent_server: int, async_driver: str
) -> None:
    async def scenario() -> None:
        pool = AsyncPool(
            f"mysql://app@127.0.0.1:{silent_server}/x", driver=async_driver, min_idle=0,
            connect_timeout=0.5,
        )  # fmt: skip
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="timed out"):
            async with pool.connection():
                pass
        assert time.monotonic() - started < 0.5 + 1.0
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="not answering"):
            async with pool.connection():  # the next one does not wait again
                pass
        assert time.monotonic() - started < 0.5

    run(scenario)


@pytest.fixture(scope="module")
def own_server() -> Iterator[EmbeddedMariaDB]:
    """A private server: its Aborted_clients counts this module's connections alone."""
    with EmbeddedMariaDB() as server:
        yield server


def aborted_clients(server: EmbeddedMariaDB) -> int:
    return int(server.execute("SHOW GLOBAL STATUS LIKE 'Aborted_clients'")[0][1])


def test_closing_says_goodbye_on_every_connection_also_with_a_rollback_reply_unread(
    own_server: EmbeddedMariaDB, async_driver: str
) -> None:
    """A connection returned with its ROLLBACK's reply unread was closed without COM_QUIT
    (the reply in the buffer read as "the server spoke"): one aborted client per worker exit
    of an app on SQLAlchemy, whose every return rolls back."""

    async def scenario() -> None:
        pool = AsyncPool(own_server.url, driver=async_driver, min_idle=2, max_size=3)
        async with pool:
            lease = pool.connection()
            await lease.__aenter__()  # still leased when the pool closes
            # returned with a rollback on its way:
            async with pool.connection() as pending, pending.cursor() as cursor:
                await cursor.execute("BEGIN")
            assert pool._driver.reset_pending(pending)
            await asyncio.sleep(0.05)  # the loop reads the reply into the driver's buffer
        await lease.__aexit__(None, None, None)  # closed as it comes back

    before = aborted_clients(own_server)
    run(scenario)
    time.sleep(0.2)  # the server notes a session's end as it reads it
    assert aborted_clients(own_server) == before
