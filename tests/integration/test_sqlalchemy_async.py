"""SQLAlchemy's async engine on postfork's asyncio pool, against a real server, asyncmy and
aiomysql: what async SQLAlchemy users rely on still works, and the pool's promises hold."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import sqlalchemy
from sqlalchemy import Column, Integer, String, event, exc, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.ext.asyncio import create_async_engine as stock_async_engine
from sqlalchemy.orm import DeclarativeBase

import postfork
from postfork import DatabaseURL
from postfork.asgi import PostforkStartup
from postfork.sqlalchemy import AsyncPostforkPool, PostforkPool, create_async_engine, engine_url
from postfork_tools.bench.delay_proxy import ProxyProcess, proxied, proxy_target

from .conftest import admin_query

T = TypeVar("T")


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "postfork_sa_async_notes"
    id = Column(Integer, primary_key=True)
    body = Column(String(40), nullable=False)


@pytest.fixture(params=("asyncmy", "aiomysql"))
def async_driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def notes(database_url: DatabaseURL) -> Iterator[str]:
    admin_query(database_url, f"DROP TABLE IF EXISTS {Note.__tablename__}")
    admin_query(
        database_url,
        f"CREATE TABLE {Note.__tablename__} (id INT PRIMARY KEY, body VARCHAR(40) NOT NULL)",
    )
    admin_query(database_url, f"INSERT INTO {Note.__tablename__} VALUES (1, 'one'), (2, 'two')")
    yield Note.__tablename__
    admin_query(database_url, f"DROP TABLE IF EXISTS {Note.__tablename__}")


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())  # type: ignore[arg-type]


def make_engine(url: DatabaseURL, driver: str, **options: Any) -> AsyncEngine:
    options.setdefault("pool_size", 2)
    return create_async_engine(engine_url(url, driver), **options)


async def started(engine: AsyncEngine) -> PostforkStartup:
    """What the app's lifespan does at start-up (postfork.asgi): the pool warm."""
    startup = PostforkStartup((engine,))
    await startup.start()
    return startup


def test_a_request_pays_no_connect_and_sqlalchemy_set_the_session_up_at_start_up(
    database_url: DatabaseURL, async_driver: str, notes: str
) -> None:
    async def scenario() -> None:
        engine = make_engine(database_url, async_driver)
        heard: list[str] = []
        for name in ("first_connect", "connect", "checkout", "checkin"):
            event.listen(engine.sync_engine, name, lambda *a, name=name: heard.append(name))
        startup = await started(engine)
        assert heard == ["first_connect", "connect"]  # at start-up, not on a request
        for _ in range(3):
            async with AsyncSession(engine) as session:
                note = await session.get(Note, 1)
                assert note is not None and note.body == "one"
        assert heard[2:] == ["checkout", "checkin"] * 3
        stats = engine.sync_engine.pool.postfork_pool.stats()
        assert stats["connects"] == 1 and stats["checkouts"] == 3
        await startup.stop()

    run(scenario)


def commands_per_session_read(url: DatabaseURL, engine_of: Callable[[DatabaseURL], Any]) -> float:
    """MySQL commands the client sent per ORM read, from runs of 20 and 40."""

    async def reads(engine: AsyncEngine, count: int) -> None:
        for _ in range(count):
            async with AsyncSession(engine) as session:
                (await session.execute(select(Note))).all()
        await engine.dispose()

    totals = []
    for count in (20, 40):
        with ProxyProcess(proxy_target(url), 0.0) as proxy:
            run(lambda count=count: reads(engine_of(proxied(url, proxy.port)), count))
            totals.append(proxy.stop()["client_commands"])
    return (totals[1] - totals[0]) / 20


def test_an_orm_read_sends_one_rollback_and_no_ping_where_stock_pre_ping_sends_three_more(
    database_url: DatabaseURL, async_driver: str, notes: str
) -> None:
    def stock(url: DatabaseURL) -> AsyncEngine:
        return stock_async_engine(engine_url(url, async_driver), pool_pre_ping=True)

    def ours(url: DatabaseURL) -> AsyncEngine:  # pre-ping is not needed; min_idle=1: no refill
        return make_engine(url, async_driver, pool_pre_ping=True, min_idle=1)  # racing dispose

    assert commands_per_session_read(database_url, stock) == pytest.approx(4, abs=0.1)
    # the query, and one ROLLBACK whose reply is read at the next checkout
    assert commands_per_session_read(database_url, ours) == pytest.approx(2, abs=0.1)


def test_a_killed_session_is_invalidated_and_only_it(
    database_url: DatabaseURL, async_driver: str
) -> None:
    async def scenario() -> None:
        engine = make_engine(database_url, async_driver, min_idle=2)
        await started(engine)
        async with engine.connect() as first, engine.connect() as second:
            victim = (await first.execute(text("SELECT CONNECTION_ID()"))).scalar()
            survivor = (await second.execute(text("SELECT CONNECTION_ID()"))).scalar()
        admin_query(database_url, f"KILL {int(victim)}")
        await asyncio.sleep(0.1)
        async with engine.connect() as conn:  # the dead one is left without a round trip
            assert (await conn.execute(text("SELECT CONNECTION_ID()"))).scalar() == survivor
        async with engine.connect() as conn:  # survivor, or a refill newer than it (LIFO)
            held = (await conn.execute(text("SELECT CONNECTION_ID()"))).scalar()
            admin_query(database_url, f"KILL {int(held)}")
            await asyncio.sleep(0.1)
            with pytest.raises(exc.OperationalError) as info:
                await conn.execute(text("SELECT SLEEP(0)"))
            assert info.value.connection_invalidated
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        await engine.dispose()

    run(scenario)


def test_dispose_closes_the_sessions_and_the_engine_serves_again(
    database_url: DatabaseURL, async_driver: str
) -> None:
    async def scenario() -> None:
        engine = make_engine(database_url, async_driver)
        await started(engine)
        old = engine.sync_engine.pool.postfork_pool
        async with engine.connect() as conn:
            before = (await conn.execute(text("SELECT CONNECTION_ID()"))).scalar()
        await engine.dispose()
        assert old.closed and isinstance(engine.sync_engine.pool, AsyncPostforkPool)
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT CONNECTION_ID()"))).scalar() != before
        await engine.dispose()

    run(scenario)


def test_errors_keep_their_sqlalchemy_types(database_url: DatabaseURL, async_driver: str) -> None:
    async def scenario() -> None:
        engine = make_engine(database_url, async_driver, pool_size=1, pool_timeout=0.2)
        async with engine.connect():
            with pytest.raises(exc.TimeoutError, match="max_size=1"):
                await engine.connect()
        await engine.dispose()

    run(scenario)


def test_wrong_uses_name_the_right_one(database_url: DatabaseURL) -> None:
    with pytest.raises(postfork.ConfigError, match=r"create_async_engine\(\)"):
        sqlalchemy.create_engine(engine_url(database_url, "asyncmy"), poolclass=PostforkPool)
    with pytest.raises(postfork.ConfigError, match=r"postfork\.sqlalchemy\.create_engine\(\)"):
        stock_async_engine(engine_url(database_url, "pymysql"), poolclass=AsyncPostforkPool)
    stock = stock_async_engine(engine_url(database_url, "asyncmy"))
    with pytest.raises(postfork.ConfigError, match=r"create_async_engine\(\)"):
        postfork.install(stock)
    with pytest.raises(postfork.ConfigError, match="AsyncPool or an async engine"):
        PostforkStartup((stock,))
