from __future__ import annotations

from typing import Any

import MySQLdb
import pytest

from postfork import DatabaseURL

DRIVERS = ("mysqlclient", "pymysql")


def admin_query(
    url: DatabaseURL, sql: str, args: tuple[Any, ...] | None = None
) -> list[tuple[Any, ...]]:
    """Run one statement on a separate raw connection (the test's own view of the server)."""
    kwargs: dict[str, Any] = {
        "user": url.user,
        "passwd": url.password,
        "connect_timeout": 5,
        "autocommit": True,
    }
    if url.unix_socket:
        kwargs["unix_socket"] = url.unix_socket
    else:
        kwargs.update(host=url.host, port=url.port)
    if url.database:
        kwargs["db"] = url.database
    conn = MySQLdb.connect(**kwargs)
    try:
        cursor = conn.cursor()
        cursor.execute(sql, args)
        return list(cursor.fetchall())
    finally:
        conn.close()


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)
