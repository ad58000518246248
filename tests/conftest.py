"""Database selection for tests: DATABASE_URL, else the local server on 127.0.0.1:3306, else a
private mariadbd. Tests that break a server always start their own (``private_server``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import pytest

from postfork import DatabaseURL, parse_url
from postfork.tools.embedded import EmbeddedMariaDB

LOCAL_URL = "mysql://root@127.0.0.1:3306/test"


def _answers(url: DatabaseURL) -> bool:
    import MySQLdb

    try:
        MySQLdb.connect(
            host=url.host,
            port=url.port,
            user=url.user,
            passwd=url.password,
            db=url.database or "",
            connect_timeout=2,
        ).close()
    except MySQLdb.Error:
        return False
    return True


@pytest.fixture(scope="session")
def database_url() -> Iterator[DatabaseURL]:
    explicit = os.environ.get("DATABASE_URL", "").strip()
    if explicit:
        yield parse_url(explicit)
        return
    local = parse_url(LOCAL_URL)
    if _answers(local):
        yield local
        return
    with EmbeddedMariaDB() as server:
        yield server.url


PrivateServerFactory = Callable[..., EmbeddedMariaDB]


@pytest.fixture
def private_server() -> Iterator[PrivateServerFactory]:
    """Start private mariadbd instances with extra options; all are stopped after the test."""
    started: list[EmbeddedMariaDB] = []

    def start(server_args: Sequence[str] = (), port: int | None = None) -> EmbeddedMariaDB:
        server = EmbeddedMariaDB(server_args=server_args, port=port)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
