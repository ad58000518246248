"""Django under ASGI servers on postfork.django: a small app of its own (sync and async views,
reads and writes), workers recycled every 10 requests where the server recycles, concurrent
clients. Whatever CONN_MAX_AGE says, every answer is a 200, the sessions stay within workers x
max_size at every sampled moment, and no request pays a connect: each request's connection
goes back to the pool when the request ends (under ASGI each request runs its sync code in a
thread and context of its own, so a connection kept for "the next request" is kept by nobody).
Stock Django's backend beside it, CONN_MAX_AGE = 60: sessions left behind."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.runner import Response, ServiceProcess, from_clients, get
from tests.e2e.conftest import service_db  # noqa: F401  (the private server)
from tests.e2e.test_orm_apps import app_env, migrate, sessions

from .conftest import get_as_a_proxy_would, serve, server_code_warmed
from .test_servers import RECYCLED_WITHIN

APP = "tests.e2e.apps.djangoapp.asgi:application"
WORKERS, MAX_SIZE = 2, 2  # the app's OPTIONS["pool"]["max_size"]
CLIENTS, EACH = 4, 30


@pytest.fixture(scope="module")
def db(service_db: EmbeddedMariaDB) -> Iterator[EmbeddedMariaDB]:  # noqa: F811
    migrate(service_db)
    yield service_db


@contextmanager
def django_under(
    db: EmbeddedMariaDB, server: str, max_requests: int = 10, **env: str
) -> Iterator[ServiceProcess]:
    with serve(
        db,
        server,
        None,  # the app's own DATABASE_URL (app_env), read by its settings
        processes=WORKERS,
        max_requests=max_requests,
        env=app_env(db, **env),
        extra=("--max-requests-jitter", "0") if server.startswith("gunicorn") else (),
        app=APP,
        ready_path="/notes/0",
    ) as service:
        yield service


class Sampler:
    """The database's session count, sampled every 50 ms while the traffic runs."""

    def __init__(self, db: EmbeddedMariaDB) -> None:
        self.db, self.counts = db, [sessions(db)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.counts.append(sessions(self.db))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def traffic(port: int, resets: list[str] | None = None) -> list[Response]:
    """CLIENTS concurrent clients, each alternating sync and async reads and writes (sent
    again, as a proxy would, when a recycling uvicorn or hypercorn worker reset them)."""
    paths = ["/notes/1", "/async/notes/1", "/notes?body=s", "/async/notes?body=a"]

    def client(offset: int) -> Iterator[Response]:
        for number in range(EACH):
            path = paths[(offset + number) % len(paths)]
            method = "POST" if "body=" in path else "GET"
            yield get_as_a_proxy_would(port, path, resets, method=method)

    return from_clients(CLIENTS, client, timeout=120)


def first_note(port: int) -> None:
    assert get(port, "/notes?body=first", method="POST").status == 200


@pytest.mark.parametrize("max_age", ["0", "60", "persistent"])
@pytest.mark.parametrize("server", ["uvicorn", "gunicorn-uvicorn", "gunicorn-asgi", "hypercorn"])
def test_every_request_served_warm_sessions_bounded_whatever_conn_max_age(
    db: EmbeddedMariaDB, server: str, max_age: str
) -> None:
    with django_under(db, server, DJANGO_CONN_MAX_AGE=max_age) as service:
        first_note(service.port)
        resets: list[str] = []
        with Sampler(db) as sampler:
            answers = traffic(service.port, resets)
        log = service.log()
    if server == "gunicorn-asgi":
        assert resets == []  # the servers that reset are uvicorn's workers and hypercorn's
    statuses = sorted({answer.status for answer in answers})
    assert statuses == [200], (statuses, log[-3000:])
    paid = [a.headers["server-timing"] for a in answers if a.timing["db-connect"] > 0]
    assert paid == [], log[-3000:]
    # a recycling worker's replacement can be warm before it has gone: one more worker's worth
    assert max(sampler.counts) <= (WORKERS + 1) * MAX_SIZE, sampler.counts
    assert not ours(tracebacks(log)), log[-3000:]


def tracebacks(log: str) -> list[str]:
    """Each traceback in the server's log, to its exception line."""
    found = re.findall(r"Traceback \(most recent call last\):\n(?:  .*\n)*.*", log)
    return list(found)


def ours(found: list[str]) -> list[str]:
    """The tracebacks through postfork or Django (hypercorn logs one of its own when a
    recycled worker cancels a connection it has just accepted: the reset above)."""
    return [text for text in found if "/postfork/" in text or "/django/" in text]


def test_the_stock_backend_with_conn_max_age_leaves_sessions_behind(db: EmbeddedMariaDB) -> None:
    """The control, as Django's documentation warns: under ASGI each request's thread keeps
    its persistent connection, and nobody closes it."""
    before = sessions(db)
    with django_under(
        db, "uvicorn", max_requests=0, DJANGO_ENGINE="django.db.backends.mysql",
        DJANGO_CONN_MAX_AGE="60",
    ) as service:  # fmt: skip
        first_note(service.port)
        answers = traffic(service.port)
        time.sleep(0.5)
        left = sessions(db) - before
    assert {answer.status for answer in answers} == {200}
    assert left > WORKERS * MAX_SIZE, left


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn-uvicorn", "gunicorn-asgi", "hypercorn"])
def test_the_warm_up_path_goes_through_the_asgi_handler_in_every_worker(
    db: EmbeddedMariaDB, server: str
) -> None:
    """POSTFORK_WARMUP_PATH under an ASGI server: one GET through Django's ASGI handler in each
    new worker (spawned or forked) before its first request, the database calls it makes off
    the event loop Django refuses them on; then the server's own request handling."""
    env = {"DJANGO_WARMUP_PATH": "/async/notes/1", "DJANGO_POSTFORK_LOG_LEVEL": "DEBUG"}
    with django_under(db, server, **env) as service:
        first_note(service.port)
        answers: list[Response] = []
        deadline = time.monotonic() + RECYCLED_WITHIN
        while len({answer.worker[0] for answer in answers}) <= WORKERS:  # until it recycled
            assert time.monotonic() < deadline, service.log()[-3000:]
            answers += traffic(service.port, [])
        log = service.log()
    workers = {answer.worker[0] for answer in answers}
    # answered by the view (a 404 before the test's first note exists is an answer too)
    warmed = re.findall(r"Django warm-up request GET /async/notes/1: (\d{3})$", log, re.M)
    assert len(warmed) >= len(workers), re.findall(r"Django warm-up request.*", log)
    assert set(warmed) <= {"200", "404"}, warmed
    assert "SynchronousOnlyOperation" not in log and not ours(tracebacks(log)), log[-3000:]
    if server != "hypercorn":  # and the server's own request handling, on requests of postfork's
        for pid in workers:
            assert server_code_warmed(server, pid) in log, log[-3000:]


@pytest.mark.parametrize("max_age", ["0", "persistent"])
def test_under_daphne_warm_before_the_first_request_and_bounded(
    db: EmbeddedMariaDB, max_age: str
) -> None:
    """daphne (Django Channels' server) runs the app in one process and never recycles it: the
    app in INSTALLED_APPS warms it while Django is set up, before daphne's reactor runs, the
    warm-up path goes through the ASGI handler, no request pays a connect, and the sessions
    stay within max_size whatever CONN_MAX_AGE says."""
    env = {
        "DJANGO_CONN_MAX_AGE": max_age,
        "DJANGO_WARMUP_PATH": "/async/notes/1",
        "DJANGO_POSTFORK_LOG_LEVEL": "DEBUG",
    }
    before = sessions(db)
    with serve(
        db, "daphne", None, processes=1, max_requests=0, env=app_env(db, **env), app=APP,
        ready_path="/notes/0",
    ) as service:  # fmt: skip
        first_note(service.port)
        with Sampler(db) as sampler:
            answers = traffic(service.port, [])
        log = service.log()
    assert sorted({answer.status for answer in answers}) == [200], log[-3000:]
    paid = [a.headers["server-timing"] for a in answers if a.timing["db-connect"] > 0]
    assert paid == [], log[-3000:]
    assert max(sampler.counts) - before <= MAX_SIZE, (before, sampler.counts)
    warmed = re.findall(r"Django warm-up request GET /async/notes/1: (\d{3})$", log, re.M)
    assert warmed and set(warmed) <= {"200", "404"}, re.findall(r"Django warm-up.*", log)
    assert "SynchronousOnlyOperation" not in log and not ours(tracebacks(log)), log[-3000:]
