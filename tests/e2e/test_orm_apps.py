"""A Flask + SQLAlchemy app and a Django app adopting postfork, each under real uWSGI (lazy-apps
off and on) and real gunicorn (preload_app on and off) with max-requests = 5: every answer a
200, no connect paid on a request after any respawn, the master holding no session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from postfork.deploy import GUNICORN_CONF
from postfork.tools.embedded import EmbeddedMariaDB
from postfork.tools.serve.command import ServeOptions, _executable
from postfork.tools.serve.runner import Response, ServiceProcess, free_port, get

ROOT = str(Path(__file__).resolve().parents[2])
APPS = {
    "flask": "tests.e2e.apps.flaskapp:application",
    "django": "tests.e2e.apps.djangoapp.wsgi:application",
}
REQUESTS = 90  # 18 generations of workers at max-requests = 5, with 2 processes
SERVERS = [
    pytest.param("uwsgi", False, id="uwsgi"),
    pytest.param("uwsgi", True, id="uwsgi-lazy-apps"),
    pytest.param("gunicorn", True, id="gunicorn-preload"),
    pytest.param("gunicorn", False, id="gunicorn"),
]


def app_env(db: EmbeddedMariaDB, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db.url.render_secret(),
        "PYTHONPATH": ROOT + os.pathsep + os.pathsep.join(sys.path),
        **extra,
    }


def migrate(db: EmbeddedMariaDB) -> None:
    """``manage.py migrate``, through postfork's backend."""
    done = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        env={
            **os.environ,
            **app_env(db),
            "DJANGO_SETTINGS_MODULE": "tests.e2e.apps.djangoapp.settings",
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def server_argv(server: str, app: str, port: int, alternate: bool) -> list[str]:
    """``alternate``: uWSGI lazy-apps, gunicorn preload_app."""
    if server == "uwsgi":
        return [
            _executable("uwsgi"),
            "--master",
            "--processes", "2",
            "--http-socket", f"127.0.0.1:{port}",
            "--chdir", ROOT,
            "--module", app,
            "--need-app",
            "--die-on-term",
            "--enable-threads",
            "--max-requests", "5",
            "--min-worker-lifetime", "0",
            "--forkbomb-delay", "0",
            "--shared-py-import", "postfork.accelerate",
            "--disable-logging",
            *(["--lazy-apps"] if alternate else []),
        ]  # fmt: skip
    return [
        _executable("gunicorn"),
        "-c", str(GUNICORN_CONF),  # the shipped configuration: postfork's named hooks
        "--workers", "2",
        "--max-requests", "5",
        "--max-requests-jitter", "0",
        "--bind", f"127.0.0.1:{port}",
        "--chdir", ROOT,
        app,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def db(service_db: EmbeddedMariaDB) -> Iterator[EmbeddedMariaDB]:
    migrate(service_db)
    yield service_db


def sessions(db: EmbeddedMariaDB) -> int:
    rows = db.execute(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
        "WHERE COMMAND <> 'Daemon' AND ID <> CONNECTION_ID()"
    )
    return int(rows[0][0])


def traffic(port: int, count: int) -> list[Response]:
    """Writes and reads, alternating: what a real app does."""
    answers = [get(port, "/notes?body=first", method="POST")]
    note = answers[0].body["id"]
    for number in range(count):
        if number % 3 == 0:
            answers.append(get(port, f"/notes?body=n{number}", method="POST"))
        else:
            answers.append(get(port, f"/notes/{note}"))
    return answers


@pytest.mark.parametrize(("server", "alternate"), SERVERS)
@pytest.mark.parametrize("app", ["flask", "django"])
def test_every_request_is_served_warm_through_recycling(
    db: EmbeddedMariaDB, app: str, server: str, alternate: bool
) -> None:
    answers, log, open_sessions = run_app(
        db, app, server, alternate, POSTFORK_PRELOAD="true" if alternate else "false"
    )
    statuses = {answer.status for answer in answers}
    assert statuses == {200}, (statuses, log[-3000:])
    paid = [a.headers["server-timing"] for a in answers if a.timing["db-connect"] > 0]
    assert paid == [], log[-3000:]  # no request after any respawn paid a connect
    assert len({answer.body["pid"] for answer in answers}) >= REQUESTS // 5 - 2  # it recycled
    assert open_sessions <= 2  # one per worker at most: the master holds none
    assert "Traceback" not in log and "respawning too fast" not in log


def test_without_the_app_in_installed_apps_each_new_worker_pays_a_connect(
    db: EmbeddedMariaDB,
) -> None:
    """The control: the ENGINE alone pools connections, but nothing warms a new worker."""
    answers, _, _ = run_app(db, "django", "uwsgi", False, DJANGO_POSTFORK_APP="false")
    paid = [answer for answer in answers if answer.timing["db-connect"] > 0]
    assert len(paid) >= REQUESTS // 5 - 2  # about one per worker


def run_app(
    db: EmbeddedMariaDB, app: str, server: str, alternate: bool, **env: str
) -> tuple[list[Response], str, int]:
    port = free_port()
    service = ServiceProcess(
        db.url,
        ServeOptions(server=server, bind=f"127.0.0.1:{port}"),
        argv=server_argv(server, APPS[app], port, alternate),
        env=app_env(db, **env),
        ready_path="/notes/0",
    )
    with service:
        answers = traffic(port, REQUESTS)
        return answers, service.log(), sessions(db)
