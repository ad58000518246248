"""Database selection for tests: DATABASE_URL, else the local server on 127.0.0.1:3306, else a
private mariadbd. Tests that break a server always start their own (``private_server``)."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from postfork import DatabaseURL, parse_url
from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.replication import EmbeddedReplicaSet

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


@pytest.fixture(scope="module")
def replica_servers() -> Iterator[EmbeddedReplicaSet]:
    """A private primary and two replicas for one test module, with the topology tests'
    tables (``notes`` for DB-API, ``orm_notes`` for the ORM), replicated."""
    with EmbeddedReplicaSet(2) as servers:
        for table in ("notes", "orm_notes"):
            servers.primary.execute(
                f"CREATE TABLE postfork.{table} "
                "(id INT PRIMARY KEY AUTO_INCREMENT, body VARCHAR(40))"
            )
        yield servers


@pytest.fixture
def replica_set(replica_servers: EmbeddedReplicaSet) -> EmbeddedReplicaSet:
    """The module's replica set, every replica caught up and saying so before each test: a
    test that stopped replication must not leave the next one a replica still catching up."""
    replica_servers.wait_for_replicas()
    return replica_servers


def reads_under_load(
    read: Callable[[], object],
    seconds: float,
    *,
    during: Callable[[], object] | None = None,
    threads: int = 4,
) -> tuple[int, list[BaseException]]:
    """``threads`` threads calling ``read()`` for ``seconds``, ``during()`` after a third of
    it (a server killed, a balancer's sessions dropped): (reads done, errors)."""
    done = itertools.count()
    errors: list[BaseException] = []
    stop = time.monotonic() + seconds

    def loop() -> None:
        while time.monotonic() < stop:
            try:
                read()
                next(done)
            except Exception as exc:
                errors.append(exc)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    if during is not None:
        time.sleep(seconds / 3)
        during()
    for worker in workers:
        worker.join()
    return next(done), errors
