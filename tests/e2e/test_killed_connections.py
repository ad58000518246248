"""The server KILLs a connection in the middle of a request's query (real uWSGI, private
MariaDB): the read is retried once on a fresh connection; a second kill fails cleanly with a
JSON 503; the following requests are unaffected. A query slower than the URL's read_timeout
ends with a 503 within that bound and is not retried.

To catch the query in flight, an admin session holds ``LOCK TABLES ... WRITE``: the service's
SELECT waits on the lock inside the server, where it can be found and killed."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from postfork.drivers import connect
from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import Response, ServiceProcess, free_port, get

QUERY_PREFIX = "SELECT o.amount_cents"  # the summary endpoint's query


@pytest.fixture
def service(service_db: EmbeddedMariaDB) -> Iterator[ServiceProcess]:
    options = ServeOptions(processes=1, max_requests=0, bind=f"127.0.0.1:{free_port()}")
    with ServiceProcess(service_db.url, options) as running:
        assert get(running.port, "/v1/accounts/1/summary").status == 200
        yield running


def waiting_query(db: EmbeddedMariaDB, not_ids: set[int], timeout: float = 10.0) -> int:
    """The id of the service's session whose summary query waits on the lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = db.execute(
            f"SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '{QUERY_PREFIX}%'"
        )
        ids = {int(row[0]) for row in rows} - not_ids
        if ids:
            return ids.pop()
        time.sleep(0.02)
    raise AssertionError("the service's query never reached the server")


def request_in_background(port: int) -> tuple[threading.Thread, dict[str, Response]]:
    result: dict[str, Response] = {}
    thread = threading.Thread(
        target=lambda: result.update(response=get(port, "/v1/accounts/2/summary", timeout=30))
    )
    thread.start()
    return thread, result


@contextmanager
def locked(db: EmbeddedMariaDB) -> Iterator[None]:
    """The service's tables write-locked by an admin session for the duration of the block."""
    admin = connect(db.url, autocommit=True)
    try:
        admin.cursor().execute("LOCK TABLES accounts WRITE, orders WRITE")
        yield
        admin.cursor().execute("UNLOCK TABLES")
    finally:
        admin.close()  # closing the session releases its locks too


def test_an_in_use_connection_killed_mid_query_is_retried_once(
    service_db: EmbeddedMariaDB, service: ServiceProcess
) -> None:
    with locked(service_db):
        thread, result = request_in_background(service.port)
        first = waiting_query(service_db, set())
        service_db.execute(f"KILL {first}")
        retry = waiting_query(service_db, {first})  # a fresh session runs the read again
        assert retry != first
    thread.join(30)
    response = result["response"]
    assert response.status == 200
    assert response.body["account_id"] == 2
    assert response.timing["db-connect"] > 0  # the retry opened the fresh connection
    assert "retrying once on a fresh one" in service.log()
    for account in (3, 4, 5):  # the pool holds no dead connection
        assert get(service.port, f"/v1/accounts/{account}/summary").status == 200


def test_killed_again_it_fails_cleanly_and_the_next_request_is_fine(
    service_db: EmbeddedMariaDB, service: ServiceProcess
) -> None:
    with locked(service_db):
        thread, result = request_in_background(service.port)
        first = waiting_query(service_db, set())
        service_db.execute(f"KILL {first}")
        second = waiting_query(service_db, {first})
        service_db.execute(f"KILL {second}")
        thread.join(30)
    response = result["response"]
    assert response.status == 503
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"] == "1"
    assert "error" in response.body and "Traceback" not in str(response.body)
    assert get(service.port, "/v1/accounts/6/summary").status == 200


def test_a_query_slower_than_the_read_timeout_ends_within_it(service_db: EmbeddedMariaDB) -> None:
    url = dataclasses.replace(
        service_db.url, options={**service_db.url.options, "read_timeout": 1.0}
    )
    options = ServeOptions(processes=1, max_requests=0, bind=f"127.0.0.1:{free_port()}")
    with ServiceProcess(url, options) as service:
        assert get(service.port, "/v1/accounts/1/summary").status == 200
        with locked(service_db):
            started = time.monotonic()
            response = get(service.port, "/v1/accounts/2/summary", timeout=30)
            elapsed = time.monotonic() - started
        assert response.status == 503
        assert response.body == {"error": "database query exceeded the read timeout (1 s)"}
        assert response.headers["retry-after"] == "1"
        assert 0.9 < elapsed < 1.9  # within the bound, and not retried
        assert "retrying once" not in service.log()
        assert get(service.port, "/v1/accounts/3/summary").status == 200
        metrics = get(service.port, "/metrics").body  # the timed-out connection was discarded
        assert 'postfork_pool_discards_total{reason="error"} 1.0' in metrics
