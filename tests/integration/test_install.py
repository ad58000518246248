"""install() and @after_fork with real forks and a real server (no app server needed)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from postfork import DatabaseURL, Pool, WarmReport, after_fork, install

from .conftest import admin_query


def in_child(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Fork, run ``work`` in the child, return what it reported (the child never returns)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            report = work()
        except BaseException as exc:
            report = {"child_error": repr(exc)}
        os.write(write_end, json.dumps(report).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.close(read_end)
    report: dict[str, Any] = json.loads(data)
    assert "child_error" not in report, report
    return report


def test_standalone_install_warms_now_and_every_forked_child_warms_itself(
    database_url: DatabaseURL, driver: str
) -> None:
    calls: list[int] = []
    pool = Pool(database_url, driver=driver, min_idle=2, max_size=2)
    installation = install(pool, warmup=lambda: calls.append(os.getpid()))
    assert installation.role.value == "standalone" and installation.warm
    assert pool.stats()["idle"] == 2 and calls == [os.getpid()], str(pool.stats())

    def child() -> dict[str, Any]:
        stats = pool.stats()  # before any checkout: the fork hook already warmed
        return {
            "idle": stats["idle"],
            "connects": stats["connects"],
            "fork_discards": stats["discards"]["fork"],
            "warm": installation.warm,
            "warmups": calls.count(os.getpid()),
        }

    report = in_child(child)
    assert report == {"idle": 2, "connects": 2, "fork_discards": 2, "warm": True, "warmups": 1}
    assert pool.stats()["connects"] == 2  # the parent kept its own sessions
    pool.close()


def test_master_mode_keeps_no_connection_and_workers_warm_after_fork(
    database_url: DatabaseURL,
) -> None:
    pool = Pool(database_url, min_idle=1, max_size=2)
    with pool.connection() as conn:  # the app queries while loading in the master
        conn.cursor().execute("SELECT 1")
    pool.enter_master_mode()  # what install() does in a uWSGI or gunicorn master
    assert pool.stats()["idle"] == 0
    with pool.connection() as conn:  # loading may go on: nothing stays open
        conn.cursor().execute("SELECT 1")
    assert pool.stats()["idle"] == 0 and pool.warm() == 0

    report = in_child(lambda: {"warmed": pool.warm(), "idle": pool.stats()["idle"]})
    assert report == {"warmed": 1, "idle": 1}
    pool.close()


def test_failing_or_slow_warmup_never_breaks_the_worker(
    database_url: DatabaseURL, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise ValueError("warm-up bug")

    with caplog.at_level(logging.WARNING, logger="postfork"):
        failing = install(Pool(database_url, min_idle=1), warmup=broken)
        started = time.monotonic()
        slow = install(
            Pool(database_url, min_idle=1), warmup=lambda: time.sleep(5), warmup_timeout=0.2
        )
        bounded = time.monotonic() - started
    assert failing.warm and slow.warm
    assert bounded < 2
    assert "warm-up failed" in caplog.text and "warm-up bug" in caplog.text
    assert "warm-up still running after 0.2s" in caplog.text
    failing.pool.close()
    slow.pool.close()


def test_unreachable_database_at_install_is_logged_and_reported_not_ready(
    caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    pool = Pool(f"mysql://root@localhost/x?unix_socket={tmp_path}/none.sock", min_idle=1)
    with caplog.at_level(logging.WARNING, logger="postfork"):
        installation = install(pool)
    assert not installation.warm and not installation.ready()
    assert "serving 503 until the database answers" in caplog.text


def test_after_fork_decorator_runs_in_every_child(database_url: DatabaseURL) -> None:
    ran: list[int] = []

    @after_fork
    def remember() -> None:
        ran.append(os.getpid())

    report = in_child(lambda: {"ran_here": ran.count(os.getpid())})
    assert report == {"ran_here": 1}
    assert os.getpid() not in ran


def test_master_holds_no_server_session_after_install_in_master_mode(
    database_url: DatabaseURL,
) -> None:
    pool = Pool(database_url, min_idle=1, max_size=2)
    pool.warm()
    with pool.connection() as conn:
        own = int(conn.thread_id())
    pool.enter_master_mode()
    time.sleep(0.05)
    ids = {
        int(row[0])
        for row in admin_query(database_url, "SELECT ID FROM information_schema.PROCESSLIST")
    }
    assert own not in ids  # closed cleanly on the server, not just forgotten


def test_the_warm_line_counts_connections_opened_before_the_warm_up(
    database_url: DatabaseURL,
) -> None:
    """An app that queried while it loaded (lazy-apps) leaves the pool warm already: the line
    says how many connections are ready, not "0 connection(s)"."""
    with Pool(database_url, min_idle=1, max_size=2) as pool:
        with pool.connection():
            pass  # the app's query at import: one idle connection before the warm-up
        installation = install(pool, preload=False, upkeep_timer=False)  # warms now: no server
        report = installation.last_report
        assert report is not None and report.connections == 0 and report.ready == 1
        assert "1 connection(s) ready (0 opened now in" in report.render()
        assert "1 already open" in report.render()
        assert WarmReport.from_json(report.to_json()) == report



STARLETTE_APP = '''
"""install() with a warm-up through the app, written above the app's own middleware."""
import asyncio, os
import postfork
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Route

pool = postfork.Pool(os.environ["DATABASE_URL"], min_idle=1, max_size=2)


def homepage(request):
    with pool.connection() as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        return JSONResponse({"one": cursor.fetchone()[0]})


app = Starlette(routes=[Route("/", homepage)])
seen = []


def warm_through_the_app():
    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        seen.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b"",
             "root_path": "", "scheme": "http", "server": ("app", 80), "http_version": "1.1"}
    asyncio.run(app(scope, receive, send))


postfork.install(pool, warmup=warm_through_the_app)


class Stamp(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        response = await call_next(request)
        response.headers["x-stamp"] = "yes"
        return response


app.add_middleware(Stamp)  # Starlette refuses this once the app has served a request
'''


def test_install_above_the_apps_middleware_warms_it_once_it_is_complete(
    database_url: DatabaseURL, tmp_path: Any
) -> None:
    """A new user's order: install() with a warm-up through the app, then the app's
    middleware. The warm-up runs as the module's body returns (it ran at the install() line,
    and every worker failed to boot: 'Cannot add middleware after an application has
    started'); it goes through the complete app, before the import returns."""
    import subprocess
    import sys

    (tmp_path / "starapp.py").write_text(STARLETTE_APP)
    check = (
        "import starapp\n"  # the warm-up has run when the import returns
        "headers = dict(starapp.seen[0]['headers'])\n"
        "print(starapp.seen[0]['status'], headers.get(b'x-stamp'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": database_url.render_secret()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "200 b'yes'"  # the warm-up went through the app's middleware
    assert "warm in" in done.stderr


FLASK_APP = '''
"""The Flask-SQLAlchemy how-to's order: the engine installed where the app is made, with the
documented warm-up request, above the models and routes the rest of the module defines."""
import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

import postfork
import postfork.wsgi
from postfork.sqlalchemy import PostforkPool

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["SQLALCHEMY_URL"]
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"poolclass": PostforkPool, "pool_size": 2}
db = SQLAlchemy(app)
seen = []
WARMUP = os.environ.get("WARMUP_PATH")
with app.app_context():
    warmup = postfork.wsgi.warmup_request(app, WARMUP) if WARMUP else None
    postfork.install(db.engine, warmup=warmup)


class Author(db.Model):
    __tablename__ = "postfork_t_authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    books: Mapped[list["Book"]] = relationship(back_populates="author")


class Book(db.Model):
    __tablename__ = "postfork_t_books"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("postfork_t_authors.id"))
    title: Mapped[str] = mapped_column(String(40))
    author: Mapped[Author] = relationship(back_populates="books")


@app.get("/one")
def one():
    from flask import request

    seen.append(request.environ.get("postfork.warmup"))
    return {"one": db.session.scalar(text("SELECT 1"))}
'''


def _import_in_fresh_interpreter(
    tmp_path: Any, module: str, source: str, check: str, env: dict[str, str]
) -> str:
    import subprocess
    import sys

    (tmp_path / f"{module}.py").write_text(source)
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}\n{check}"],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip() + "\n" + done.stderr


def _sqlalchemy_url(database_url: DatabaseURL) -> str:
    from postfork.sqlalchemy import engine_url

    return engine_url(database_url).render_as_string(hide_password=False)


def test_the_orms_mappers_are_configured_once_the_apps_import_returns(
    database_url: DatabaseURL, tmp_path: Any
) -> None:
    """SQLAlchemy configures mappers at the first query, in every new worker (~20 ms on its
    first request). install() above the models configures them as the app's module returns:
    in a master before fork, every worker inherits them. No query is needed for it."""
    out = _import_in_fresh_interpreter(
        tmp_path,
        "flaskapp_mappers",
        FLASK_APP,
        "from sqlalchemy import inspect\n"
        "print(inspect(flaskapp_mappers.Book).configured, flaskapp_mappers.seen)",
        {"SQLALCHEMY_URL": _sqlalchemy_url(database_url)},
    )
    assert out.startswith("True []"), out  # configured, and no request was sent


def test_the_wsgi_warm_up_request_goes_through_the_complete_app_before_import_returns(
    database_url: DatabaseURL, tmp_path: Any
) -> None:
    out = _import_in_fresh_interpreter(
        tmp_path,
        "flaskapp_warm",
        FLASK_APP,
        "print(flaskapp_warm.seen)",
        {"SQLALCHEMY_URL": _sqlalchemy_url(database_url), "WARMUP_PATH": "/one"},
    )
    assert out.startswith("[True, True, True]"), out  # defined below install(), and marked
    assert "warm in" in out and "warm-up request" not in out  # a 200: nothing to warn about


def test_a_warm_up_request_answering_an_error_is_logged_and_the_app_serves(
    database_url: DatabaseURL, tmp_path: Any
) -> None:
    out = _import_in_fresh_interpreter(
        tmp_path,
        "flaskapp_404",
        FLASK_APP,
        "print(flaskapp_404.seen)",
        {"SQLALCHEMY_URL": _sqlalchemy_url(database_url), "WARMUP_PATH": "/nowhere"},
    )
    assert "warm-up request GET /nowhere answered 404" in out


def test_a_warm_up_path_that_is_not_a_path_is_refused_with_the_way_out() -> None:
    from postfork.errors import ConfigError
    from postfork.wsgi import warmup_request

    with pytest.raises(ConfigError, match="must be a path starting with '/'"):
        warmup_request(lambda environ, start_response: [], "http://example.com/")


TWO_POOLS = '''
import os
import postfork

order = []
a = postfork.Pool(os.environ["DATABASE_URL"], min_idle=1, max_size=1)
b = postfork.Pool(os.environ["DATABASE_URL"], min_idle=1, max_size=1)
postfork.install(a, warmup=lambda: order.append(("a", defined)))
postfork.install(b, warmup=lambda: order.append(("b", defined)))
defined = True
'''


def test_two_installs_in_one_module_both_warm_up_once_it_is_complete(
    database_url: DatabaseURL, tmp_path: Any
) -> None:
    out = _import_in_fresh_interpreter(
        tmp_path,
        "twopools",
        TWO_POOLS,
        "print(twopools.order)",
        {"DATABASE_URL": database_url.render_secret()},
    )
    assert out.startswith("[('a', True), ('b', True)]"), out
