"""SQLAlchemy on postfork against a real server: what SQLAlchemy users rely on still works,
and what postfork promises holds for an engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import Column, Integer, String, event, exc, select, text, update
from sqlalchemy.orm import DeclarativeBase, Session

import postfork
from postfork import DatabaseURL
from postfork.sqlalchemy import PoolTimeoutError, PostforkPool, engine_url
from postfork_tools.bench.delay_proxy import ProxyProcess, proxied, proxy_target

from .conftest import admin_query


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "postfork_sa_notes"
    id = Column(Integer, primary_key=True)
    body = Column(String(40), nullable=False)


@pytest.fixture
def notes(database_url: DatabaseURL) -> Iterator[str]:
    engine = sqlalchemy.create_engine(engine_url(database_url))
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    engine.dispose()
    yield Note.__tablename__
    admin_query(database_url, f"DROP TABLE IF EXISTS {Note.__tablename__}")


def make_engine(url: DatabaseURL, driver: str = "mysqlclient", **options: Any) -> sqlalchemy.Engine:
    options.setdefault("pool_size", 2)
    return sqlalchemy.create_engine(engine_url(url, driver), poolclass=PostforkPool, **options)


# -- round trips ---------------------------------------------------------------------------------


def commands_per_read(url: DatabaseURL, engine_of: Any) -> tuple[float, Any]:
    """MySQL commands the client sent per simple read, counted by a proxy, from two runs of
    20 and 40 reads: connecting and set-up cancel out."""
    totals, engine = [], None
    for reads in (20, 40):
        with ProxyProcess(proxy_target(url), 0.0) as proxy:
            engine = engine_of(proxied(url, proxy.port))
            for _ in range(reads):
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1")).scalar()
            totals.append(proxy.stop()["client_commands"])
    return (totals[1] - totals[0]) / 20, engine


def test_a_simple_read_waits_for_one_round_trip_where_stock_pre_ping_waits_for_three(
    database_url: DatabaseURL, driver: str
) -> None:
    def stock(url: DatabaseURL) -> sqlalchemy.Engine:
        return sqlalchemy.create_engine(engine_url(url, driver), pool_pre_ping=True)

    def on_postfork(url: DatabaseURL) -> sqlalchemy.Engine:
        return make_engine(url, driver)

    stock_commands, _ = commands_per_read(database_url, stock)
    ours, engine = commands_per_read(database_url, on_postfork)
    assert stock_commands == pytest.approx(3, abs=0.1)  # ping, query, rollback: each waited for
    assert ours == pytest.approx(2, abs=0.1)  # the query, and a rollback not waited for:
    pool = engine.pool.postfork_pool
    with pool._lock:
        (slot,) = pool._idle
    assert pool._driver.reset_pending(slot.conn)  # its reply is read at the next checkout


def test_an_orm_session_read_sends_one_rollback_and_waits_for_none_of_it(
    database_url: DatabaseURL, driver: str, notes: str
) -> None:
    """A Session rolls back its transaction, then the pool resets the connection: stock
    SQLAlchemy sends two ROLLBACKs (and a ping), each waited for; on postfork one is sent."""

    def read(engine: sqlalchemy.Engine) -> None:
        with Session(engine) as session:
            session.execute(select(Note)).all()

    def session_commands(engine_of: Any) -> float:
        totals = []
        for reads in (20, 40):
            with ProxyProcess(proxy_target(database_url), 0.0) as proxy:
                engine = engine_of(proxied(database_url, proxy.port))
                for _ in range(reads):
                    read(engine)
                totals.append(proxy.stop()["client_commands"])
        return (totals[1] - totals[0]) / 20

    stock = session_commands(
        lambda url: sqlalchemy.create_engine(engine_url(url, driver), pool_pre_ping=True)
    )
    ours = session_commands(lambda url: make_engine(url, driver))
    assert stock == pytest.approx(4, abs=0.1)  # ping, query, ROLLBACK, ROLLBACK
    assert ours == pytest.approx(2, abs=0.1)  # query, one ROLLBACK not waited for


# -- SQLAlchemy's behaviour, kept ----------------------------------------------------------------


def test_pool_events_fire_and_set_up_runs_once_per_session(database_url: DatabaseURL) -> None:
    engine = make_engine(database_url)
    heard: list[str] = []
    for name in ("first_connect", "connect", "checkout", "checkin", "reset", "close"):
        event.listen(engine, name, lambda *args, name=name: heard.append(name))
    postfork.install(engine)  # warms: the session is set up now, not on a request
    assert heard == ["first_connect", "connect"]
    for _ in range(3):
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    assert heard[2:] == ["checkout", "reset", "checkin"] * 3  # no second connect
    engine.dispose()
    assert "close" in heard


def test_orm_commit_rollback_and_found_rows(database_url: DatabaseURL, notes: str) -> None:
    engine = make_engine(database_url)
    with Session(engine) as session:
        session.add(Note(id=1, body="kept"))
        session.commit()
        session.add(Note(id=2, body="dropped"))
        session.flush()
        session.rollback()
    with Session(engine) as session:
        assert [note.body for note in session.scalars(select(Note))] == ["kept"]
        # FOUND_ROWS, as SQLAlchemy's dialect asks: an unchanged row still counts as matched
        result = session.execute(update(Note).where(Note.id == 1).values(body="kept"))
        assert result.rowcount == 1
        session.commit()


def test_a_killed_session_is_invalidated_and_only_it(database_url: DatabaseURL) -> None:
    engine = make_engine(database_url, min_idle=2)
    postfork.install(engine)
    invalidated: list[bool] = []
    event.listen(engine, "invalidate", lambda *args: invalidated.append(True))
    with engine.connect() as first, engine.connect() as second:
        victim = first.execute(text("SELECT CONNECTION_ID()")).scalar()
        survivor = second.execute(text("SELECT CONNECTION_ID()")).scalar()
    admin_query(database_url, f"KILL {int(victim)}")
    time.sleep(0.1)
    with engine.connect() as conn:  # the dead one is found by poll(), no error
        assert conn.execute(text("SELECT CONNECTION_ID()")).scalar() == survivor
    with engine.connect() as conn:
        admin_query(database_url, f"KILL {int(survivor)}")
        with pytest.raises(exc.OperationalError) as info:
            conn.execute(text("SELECT SLEEP(0)"))
        assert info.value.connection_invalidated and invalidated == [True]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    assert engine.pool.postfork_pool.stats()["discards"]["stale"] == 1


def test_errors_keep_their_sqlalchemy_types(database_url: DatabaseURL) -> None:
    engine = make_engine(database_url, pool_size=1, pool_timeout=0.2)
    with engine.connect(), pytest.raises(exc.TimeoutError) as timeout:
        engine.connect()
    assert isinstance(timeout.value, PoolTimeoutError)
    assert isinstance(timeout.value, postfork.PoolTimeout) and "max_size=1" in str(timeout.value)
    refused = sqlalchemy.create_engine(
        "mysql+mysqldb://root@127.0.0.1:1/x", poolclass=PostforkPool, connect_timeout=1
    )
    with pytest.raises(exc.OperationalError) as info:
        refused.connect()
    assert info.value.orig.args[0] in (2002, 2003)


def test_dispose_closes_this_process_sessions_and_keeps_the_engine_installed(
    database_url: DatabaseURL,
) -> None:
    engine = make_engine(database_url)
    postfork.install(engine)
    old = engine.pool.postfork_pool
    with engine.connect() as conn:
        before = conn.execute(text("SELECT CONNECTION_ID()")).scalar()
    engine.dispose()
    assert old.closed
    assert engine.pool.postfork_pool.stats()["idle"] == 1  # the new pool is installed: warm
    with engine.connect() as conn:
        assert conn.execute(text("SELECT CONNECTION_ID()")).scalar() != before
    engine.dispose()  # a recreated pool recreates again (it once got _dispatch twice)
    assert engine.pool.postfork_pool.stats()["idle"] == 1


def test_threads_get_a_connection_each_and_never_share_one(database_url: DatabaseURL) -> None:
    engine = make_engine(database_url, pool_size=3)
    seen: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                with engine.connect() as conn:
                    seen.append(conn.execute(text("SELECT CONNECTION_ID()")).scalar())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(seen) == 120 and len(set(seen)) <= 3


# -- bad input names the fix ----------------------------------------------------------------------


def test_an_unsupported_database_is_refused_with_the_fix() -> None:
    with pytest.raises(postfork.ConfigError, match="serve MySQL and MariaDB engines"):
        sqlalchemy.create_engine("sqlite://", poolclass=PostforkPool)


def test_an_engine_on_another_pool_cannot_be_installed(database_url: DatabaseURL) -> None:
    engine = sqlalchemy.create_engine(engine_url(database_url))
    with pytest.raises(postfork.ConfigError, match=r"poolclass=postfork\.sqlalchemy\.PostforkPool"):
        postfork.install(engine)


def test_wrong_uses_of_postfork_with_sqlalchemy_name_the_right_one(
    database_url: DatabaseURL,
) -> None:
    with pytest.raises(postfork.ConfigError, match=r"poolclass=postfork\.sqlalchemy\.PostforkPool"):
        sqlalchemy.create_engine(engine_url(database_url), poolclass=postfork.Pool)
    pool = postfork.Pool(database_url, min_idle=0)
    misused = sqlalchemy.create_engine(engine_url(database_url), creator=pool.connection)
    with pytest.raises(AttributeError, match="a Lease is not a DB-API connection"):
        misused.connect()
    with pytest.raises(postfork.ConfigError, match="custom creator= is not supported"):
        sqlalchemy.create_engine(
            engine_url(database_url), poolclass=PostforkPool, creator=lambda: None
        )


def test_a_do_connect_listener_is_refused_at_connect_naming_connect_args(
    database_url: DatabaseURL,
) -> None:
    engine = sqlalchemy.create_engine(engine_url(database_url), poolclass=PostforkPool)
    sqlalchemy.event.listen(engine, "do_connect", lambda *args: None)
    with pytest.raises(postfork.ConfigError, match="give connect_args= to create_engine"):
        engine.connect()
    assert engine.pool.postfork_pool.stats()["idle"] == 0  # the connection was closed
    engine.dispose()


# -- Flask-SQLAlchemy ---------------------------------------------------------------------------


def test_flask_sqlalchemy_adopts_it_with_its_engine_options(
    database_url: DatabaseURL, notes: str
) -> None:
    flask = pytest.importorskip("flask")
    from flask_sqlalchemy import SQLAlchemy

    app = flask.Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = engine_url(database_url).render_as_string(False)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"poolclass": PostforkPool, "pool_size": 2}
    db = SQLAlchemy(app)

    @app.get("/notes/<int:note_id>")
    def read(note_id: int) -> dict[str, Any]:
        note = db.session.get(Note, note_id)
        return {
            "body": note.body if note else None,
            "connection": db.session.execute(text("SELECT CONNECTION_ID()")).scalar(),
        }

    with app.app_context():
        installation = postfork.install(db.engine)
        db.session.add(Note(id=5, body="flask"))
        db.session.commit()
    assert installation.warm and isinstance(installation.pool, postfork.Pool)
    client = app.test_client()
    answers = [client.get("/notes/5").get_json() for _ in range(3)]
    assert {answer["body"] for answer in answers} == {"flask"}
    assert len({answer["connection"] for answer in answers}) == 1  # one warm session, reused
