"""The pool against a real server, both drivers."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from postfork import DatabaseURL, Pool

from .conftest import admin_query


def scalar(conn: Any, sql: str) -> Any:
    cursor = conn.cursor()
    cursor.execute(sql)
    row = cursor.fetchone()
    cursor.close()
    return row[0]


def session_rollbacks(conn: Any) -> int:
    cursor = conn.cursor()
    cursor.execute("SHOW SESSION STATUS LIKE 'Com_rollback'")
    return int(cursor.fetchone()[1])


@pytest.fixture
def scratch_table(database_url: DatabaseURL) -> Any:
    name = f"postfork_scratch_{threading.get_ident() % 100000}"
    admin_query(
        database_url, f"CREATE TABLE IF NOT EXISTS {name} (id INT PRIMARY KEY) ENGINE=InnoDB"
    )
    admin_query(database_url, f"DELETE FROM {name}")
    yield name
    admin_query(database_url, f"DROP TABLE IF EXISTS {name}")


def test_checkout_runs_queries_and_reuses_one_session(
    database_url: DatabaseURL, driver: str
) -> None:
    with Pool(database_url, driver=driver, min_idle=1, max_size=2) as pool:
        assert pool.warm() == 1
        ids = set()
        for _ in range(5):
            with pool.connection() as conn:
                ids.add(scalar(conn, "SELECT CONNECTION_ID()"))
                assert scalar(conn, "SELECT 1 + 1") == 2
        assert len(ids) == 1
        assert pool.stats()["connects"] == 1


def test_open_transaction_is_rolled_back_on_return_only_when_open(
    database_url: DatabaseURL, driver: str, scratch_table: str
) -> None:
    with Pool(database_url, driver=driver, min_idle=0, max_size=1) as pool:
        with pool.connection() as conn:
            conn.cursor().execute(f"INSERT INTO {scratch_table} VALUES (1)")  # never committed
            before = session_rollbacks(conn)
        with pool.connection() as conn:
            assert session_rollbacks(conn) == before + 1
            assert scalar(conn, f"SELECT COUNT(*) FROM {scratch_table}") == 0
            conn.rollback()  # leave no transaction open: the next return must not roll back
            after_read = session_rollbacks(conn)
        with pool.connection() as conn:
            assert session_rollbacks(conn) == after_read


def test_autocommit_pool_returns_connections_with_zero_round_trips(
    database_url: DatabaseURL, driver: str, scratch_table: str
) -> None:
    with Pool(database_url, driver=driver, min_idle=0, max_size=1, autocommit=True) as pool:
        with pool.connection() as conn:
            start = session_rollbacks(conn)
        for _ in range(3):
            with pool.connection() as conn:
                scalar(conn, f"SELECT COUNT(*) FROM {scratch_table}")
        with pool.connection() as conn:
            assert session_rollbacks(conn) == start


def test_init_sql_runs_on_every_new_connection(database_url: DatabaseURL, driver: str) -> None:
    init = ["SET SESSION time_zone = '+05:00'", "SET SESSION sql_mode = 'STRICT_ALL_TABLES'"]
    with Pool(database_url, driver=driver, min_idle=2, max_size=2, init_sql=init) as pool:
        pool.warm()
        a, b = pool.connection(), pool.connection()
        for lease in (a, b):
            conn = lease.__enter__()
            assert scalar(conn, "SELECT @@SESSION.time_zone") == "+05:00"
        for lease in (a, b):
            lease.__exit__(None, None, None)


def test_session_killed_mid_lease_is_discarded_and_the_next_checkout_works(
    database_url: DatabaseURL, driver: str
) -> None:
    with Pool(database_url, driver=driver, min_idle=0, max_size=1) as pool:
        with pytest.raises(Exception) as info, pool.connection() as conn:
            admin_query(database_url, f"KILL {scalar(conn, 'SELECT CONNECTION_ID()')}")
            time.sleep(0.05)
            scalar(conn, "SELECT 1")
        assert pool._driver.is_disconnect(info.value), info.value
        assert pool.stats()["discards"]["error"] == 1
        with pool.connection() as conn:
            assert scalar(conn, "SELECT 1") == 1


def test_threads_share_a_real_pool_safely(database_url: DatabaseURL, driver: str) -> None:
    errors: list[BaseException] = []
    with Pool(database_url, driver=driver, min_idle=2, max_size=3, checkout_timeout=30) as pool:

        def worker() -> None:
            try:
                for _ in range(50):
                    with pool.connection() as conn:
                        assert scalar(conn, "SELECT 7") == 7
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        stats = pool.stats()
    assert errors == []
    assert stats["checkouts"] == 300 and stats["connects"] <= 3


def test_the_rollback_on_return_does_not_wait_yet_frees_the_locks_at_once(
    database_url: DatabaseURL, driver: str, scratch_table: str
) -> None:
    """A returned transaction's ROLLBACK is sent and not waited for: the server releases its
    locks at once, and the reply is read at the next checkout."""
    with Pool(database_url, driver=driver, min_idle=0, max_size=1) as pool:
        lease = pool.connection()
        with lease as conn:
            conn.cursor().execute(f"INSERT INTO {scratch_table} VALUES (7)")  # holds the row lock
        assert pool._driver.reset_pending(conn)  # returned without waiting for the reply
        started = time.monotonic()
        admin_query(
            database_url,
            f"SET STATEMENT innodb_lock_wait_timeout=2 FOR INSERT INTO {scratch_table} VALUES (7)",
        )  # would wait 2 s and fail if the row lock were still held
        assert time.monotonic() - started < 1.5
        with pool.connection() as again:
            assert again is conn and not pool._driver.reset_pending(conn)
            assert scalar(again, f"SELECT COUNT(*) FROM {scratch_table}") == 1  # the admin's row
        assert pool.stats()["discards"] == dict.fromkeys(pool.stats()["discards"], 0)


def test_a_second_rollback_while_one_is_on_its_way_sends_nothing(
    database_url: DatabaseURL, driver: str
) -> None:
    """SQLAlchemy's ORM rolls back twice as a Session closes; the second must cost nothing."""
    with (
        Pool(database_url, driver=driver, min_idle=0, max_size=1) as pool,
        pool.connection() as conn,
    ):
        before = session_rollbacks(conn)
        scalar(conn, "SELECT 1")
        conn.rollback()
        conn.rollback()  # nothing was sent since the first: nothing to undo, nothing sent
        assert session_rollbacks(conn) == before + 1
