"""A FastAPI app on SQLAlchemy's async engine on postfork, under every ASGI server, its
workers recycled every 10 requests: every answer 200, no connect on any request (a new
worker's pool is warm in its lifespan before it accepts), no aborted client; the stock engine
beside it pays a connect on each new worker's first request."""

from __future__ import annotations

import time

import pytest

from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.runner import Response, ServiceProcess

from .conftest import aborted_clients, reads, serve, server_code_warmed

SERVERS = ["uvicorn", "gunicorn-uvicorn", "gunicorn-asgi", "hypercorn"]
WORKERS_SEEN = 4  # the 2 first workers and at least 2 replacements


# gunicorn's ASGI worker looks at its max_requests once a second and serves on meanwhile (a
# fast client gets hundreds of answers from a worker past its limit); the other servers recycle
# at once. Recycling twice takes a few of those checks plus two boots.
GUNICORN_ASGI_CHECK_SECONDS = 1.0
RECYCLED_WITHIN = 20 * GUNICORN_ASGI_CHECK_SECONDS


def until_recycled(service: ServiceProcess) -> list[Response]:
    """Requests until WORKERS_SEEN workers have answered."""
    responses: list[Response] = []
    deadline = time.monotonic() + RECYCLED_WITHIN
    while len({r.worker[0] for r in responses}) < WORKERS_SEEN:
        assert time.monotonic() < deadline, service.log()[-3000:]
        responses += reads(service, 20)
    return responses


@pytest.mark.parametrize(
    ("server", "driver"),
    [*((server, "asyncmy") for server in SERVERS), ("gunicorn-uvicorn", "aiomysql")],
)
def test_no_request_pays_a_connect_after_any_respawn(
    notes_db: EmbeddedMariaDB, server: str, driver: str
) -> None:
    aborted = aborted_clients(notes_db)
    notes_db.execute("SET GLOBAL log_warnings = 4")  # its log names each aborted session
    with serve(notes_db, server, driver) as service:
        responses = until_recycled(service)
        aborted_while_serving = aborted_clients(notes_db) - aborted
        log = service.log()
    assert {r.status for r in responses} == {200}, log[-3000:]
    paid = [r.worker for r in responses if r.timing["db-connect"] > 0]
    assert paid == [], log[-3000:]
    assert aborted_while_serving == 0, log[-3000:] + notes_db.error_log.read_text()[-2000:]


def test_with_gunicorn_preloading_the_app_no_worker_inherits_a_session(
    notes_db: EmbeddedMariaDB,
) -> None:
    """The app (and its engine) made once in the arbiter: it keeps no connection, every
    forked worker warms its own in its lifespan."""
    aborted = aborted_clients(notes_db)
    env = {"NOTES_LOG_LEVEL": "INFO"}
    with serve(notes_db, "gunicorn-uvicorn", extra=("--preload",), env=env) as service:
        responses = until_recycled(service)
        log = service.log()
        sessions = {r.body["session"] for r in responses}
        aborted_while_serving = aborted_clients(notes_db) - aborted
    assert {r.status for r in responses} == {200}, log[-3000:]
    assert "gunicorn master pid" in log and "no connection kept" in log, log[-3000:]
    assert [r.worker for r in responses if r.timing["db-connect"] > 0] == []
    assert len(sessions) >= WORKERS_SEEN  # one session per worker: none shared, none inherited
    assert aborted_while_serving == 0


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn-uvicorn"])
def test_the_stock_engine_pays_a_connect_on_each_new_workers_first_request(
    notes_db: EmbeddedMariaDB, server: str
) -> None:
    """The control: SQLAlchemy's own async pool connects lazily, in the request."""
    with serve(notes_db, server, env={"NOTES_POOL": "stock"}) as service:
        responses = until_recycled(service)
    firsts = [r for r in responses if r.worker[1] == 1]
    assert firsts and all(r.timing["db-connect"] > 0 for r in firsts)


@pytest.mark.parametrize("server", SERVERS)
def test_stopped_through_its_main_process_every_worker_closes_its_sessions(
    notes_db: EmbeddedMariaDB, server: str
) -> None:
    """SIGTERM to the server's main process: each worker's lifespan shutdown closes its pool
    (COM_QUIT), the server counts no aborted client."""
    aborted = aborted_clients(notes_db)
    service = serve(notes_db, server, max_requests=0).start()
    try:
        assert {r.status for r in reads(service, 10)} == {200}
    finally:
        service.stop_through_main()
    assert aborted_clients(notes_db) == aborted


ACCESS_LOG_ON = {
    "uvicorn": ("--access-log",),
    "gunicorn-uvicorn": ("--access-logfile", "-"),
    "gunicorn-asgi": ("--access-logfile", "-"),
}


@pytest.mark.parametrize("server", list(ACCESS_LOG_ON))
def test_each_new_worker_runs_its_servers_request_handling_before_it_accepts(
    notes_db: EmbeddedMariaDB, server: str
) -> None:
    """The server's own HTTP code (uvicorn's protocol, gunicorn's ASGI worker) serves requests
    of postfork's own in every worker's lifespan: never access-logged, never counted against
    the worker's request limit (a worker still serves 10 real requests)."""
    env = {"NOTES_LOG_LEVEL": "DEBUG"}
    with serve(notes_db, server, env=env, extra=ACCESS_LOG_ON[server]) as service:
        responses = until_recycled(service)
        log = service.log()
    assert {r.status for r in responses} == {200}, log[-3000:]
    for pid in {r.worker[0] for r in responses}:
        assert server_code_warmed(server, pid) in log, log[-3000:]
    assert "/notes/1" in log  # the access log is on
    assert "postfork-warmup" not in log
    assert max(r.worker[1] for r in responses) >= 10
