"""A Flask + SQLAlchemy app and a Django app adopting postfork, each under real uWSGI (lazy-apps
off and on) and real gunicorn (preload_app on and off) with max-requests = 5: every answer a
200, no connect paid on a request after any respawn, the master holding no session."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from postfork_tools.deploy import GUNICORN_CONF
from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions, _executable
from postfork_tools.serve.runner import Response, ServiceProcess, free_port, get

from .conftest import seed_server

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


def create_flask_table(db: EmbeddedMariaDB) -> None:
    """The Flask app's table, made by a process of its own (the app makes it at import)."""
    done = subprocess.run(
        [sys.executable, "-c", "import tests.e2e.apps.flaskapp"],
        env={**os.environ, **app_env(db), "FLASK_POOL": "stock"},
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
    if app == "flask":  # an app that configures no logging: postfork's warm line per worker
        warmed = re.findall(r"\[INFO\] postfork\.install: pid (\d+): warm in", log)
        served = {str(answer.body["pid"]) for answer in answers}
        assert served <= set(warmed) and len(warmed) == len(set(warmed)), log[-3000:]
        assert "postfork.access" not in log  # and nothing per request


def test_a_recycling_setting_that_cannot_work_is_said_without_logging_configured(
    db: EmbeddedMariaDB,
) -> None:
    """uWSGI with max-requests and its default min-worker-lifetime (10 s) recycles no worker
    before it is 10 s old; the app configures no logging, and postfork's WARNING that says so
    is in the server's log anyway."""
    port = free_port()
    argv = server_argv("uwsgi", APPS["flask"], port, False)
    for option in ("--min-worker-lifetime", "--shared-py-import"):  # a plain configuration
        at = argv.index(option)
        del argv[at : at + 2]
    service = ServiceProcess(
        db.url,
        ServeOptions(server="uwsgi", bind=f"127.0.0.1:{port}"),
        argv=argv,
        env=app_env(db),
        ready_path="/notes/0",
    )
    with service:
        log = service.log()
    assert "[WARNING] postfork.server: max-requests is set but min-worker-lifetime is 10 s" in log
    assert log.count("min-worker-lifetime is 10 s") == 1, log[-2000:]  # once, by the master


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


def concurrent_reads(port: int, notes: dict[int, str], clients: int = 8, each: int = 40) -> int:
    """Reads of different notes from several clients at once; returns how many went wrong (no
    answer, not a 200, or another note's body: a reply read off a socket shared with another
    process)."""
    wrong = [0]
    lock = threading.Lock()
    ids = sorted(notes)

    def client(offset: int) -> None:
        for number in range(each):
            note = ids[(offset + number) % len(ids)]
            try:
                answer = get(port, f"/notes/{note}", timeout=10)
                ok = answer.status == 200 and answer.body["body"] == notes[note]
            except (OSError, ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                with lock:
                    wrong[0] += 1

    threads = [threading.Thread(target=client, args=(offset,)) for offset in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return wrong[0]


@pytest.mark.parametrize("engine", ["postfork.django", "django.db.backends.mysql"])
def test_a_connection_opened_at_import_in_the_arbiter_is_closed_before_fork(
    db: EmbeddedMariaDB, engine: str
) -> None:
    """gunicorn with preload_app, persistent connections, an app that queries while it loads.
    Stock Django hands the arbiter's connection to every worker (the control: errors); on
    postfork the arbiter gives it back before forking and says so, and every answer is a 200."""
    port = free_port()
    argv = server_argv("gunicorn", APPS["django"], port, True)
    argv[argv.index("--workers") + 1] = "4"
    argv[argv.index("--max-requests") + 1] = "0"
    env = app_env(
        db,
        POSTFORK_PRELOAD="true",
        DJANGO_ENGINE=engine,
        DJANGO_CONN_MAX_AGE="persistent",
        DJANGO_QUERY_AT_IMPORT="true",
    )
    options = ServeOptions(server="gunicorn", bind=f"127.0.0.1:{port}")
    with ServiceProcess(db.url, options, argv=argv, env=env, ready_path="/notes/0") as service:
        notes = {}
        for number in range(8):
            created = get(port, f"/notes?body=note{number}", method="POST").body
            notes[created["id"]] = f"note{number}"
        wrong = sum(concurrent_reads(port, notes) for _ in range(3))
        log = service.log()
    if engine == "postfork.django":
        assert wrong == 0, log[-3000:]
        assert "closing Django's 'default' connection in the master before fork" in log
    else:
        assert wrong > 0, "the control should fail: every worker shares the arbiter's socket"


@pytest.mark.private_server
@pytest.mark.parametrize(
    ("app", "probe", "stock"),
    [
        ("flask", "SELECT @@sql_mode", {"FLASK_POOL": "stock"}),  # SQLAlchemy's dialect set-up
        ("django", "@@default_storage_engine", {"DJANGO_ENGINE": "django.db.backends.mysql"}),
    ],
)
@pytest.mark.parametrize("on_postfork", [True, False], ids=["postfork", "stock"])
def test_the_orms_server_probe_runs_once_in_the_master_not_in_every_worker(
    private_server: Any, app: str, probe: str, stock: dict[str, str], on_postfork: bool
) -> None:
    """What the ORM asks the server once per process (version, sql_mode...): on postfork the
    master asks, and every worker inherits the answers; stock, every new worker asks again."""
    db = private_server(["--general-log=1", "--general-log-file=general.log"])
    seed_server(db)
    migrate(db)
    create_flask_table(db)
    general = db.datadir / "general.log"
    before = general.read_text(errors="replace").count(probe)
    extra = {} if on_postfork else stock
    answers, log, _ = run_app(db, app, "uwsgi", False, FLASK_CREATE_ALL="false", **extra)
    asked = general.read_text(errors="replace").count(probe) - before
    assert {answer.status for answer in answers} == {200}, log[-2000:]
    workers = len({answer.body["pid"] for answer in answers})
    if on_postfork:
        assert asked == 1  # the master's, once
    else:
        assert asked >= workers  # the control: once per worker
