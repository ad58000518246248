"""A master (uWSGI without lazy-apps, gunicorn with preload_app) passes no connection to its
workers: what the app opened while loading is closed before the workers fork."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions, _executable
from postfork_tools.serve.runner import ServiceProcess, free_port, get

ROOT = str(Path(__file__).resolve().parents[2])
APP = "tests.e2e.apps.loadtime_query:application"


HOOKS_CONF = "from postfork.gunicorn import post_fork, pre_fork, worker_exit  # noqa: F401\n"


def argv(server: str, port: int, conf: str | None = None) -> list[str]:
    if server == "uwsgi":
        return [
            _executable("uwsgi"),
            "--master",
            "--processes",
            "2",
            "--http-socket",
            f"127.0.0.1:{port}",
            "--chdir",
            ROOT,
            "--module",
            APP,
            "--need-app",
            "--die-on-term",
            "--enable-threads",
        ]
    return [
        _executable("gunicorn"),
        *(["-c", conf] if conf else []),
        "--preload",
        "--workers",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        ROOT,
        "--no-control-socket",
        APP,
    ]


def sessions(db: EmbeddedMariaDB) -> int:
    rows = db.execute(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
        "WHERE COMMAND <> 'Daemon' AND ID <> CONNECTION_ID()"
    )
    return int(rows[0][0])


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
def test_master_keeps_no_session_and_each_worker_has_its_own(
    service_db: EmbeddedMariaDB, server: str
) -> None:
    port = free_port()
    options = ServeOptions(server=server, bind=f"127.0.0.1:{port}")
    service = ServiceProcess(
        service_db.url,
        options,
        argv=argv(server, port),
        env={"PYTHONPATH": ROOT + ":" + ":".join(sys.path)},
    )
    with service:
        time.sleep(0.5)  # let both workers finish their post-fork warm-up
        assert sessions(service_db) == 2  # one per worker, none for the master
        seen = {}
        for _ in range(20):
            body = get(port, "/").body
            seen[body["pid"]] = body["connection_id"]
        assert len(set(seen.values())) == len(seen)  # no two workers share a session
        assert "Traceback" not in service.log()


def test_gunicorn_hooks_close_what_the_app_opened_in_the_arbiter_without_install(
    service_db: EmbeddedMariaDB, tmp_path: Path
) -> None:
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(HOOKS_CONF)
    port = free_port()
    service = ServiceProcess(
        service_db.url,
        ServeOptions(server="gunicorn", bind=f"127.0.0.1:{port}"),
        argv=argv("gunicorn", port, str(conf)),
        env={"PYTHONPATH": ROOT + ":" + ":".join(sys.path), "LOADTIME_INSTALL": "0"},
    )
    with service:
        time.sleep(0.5)
        # no warm-up without install(): each worker connects on its first request
        pids = {get(port, "/").body["pid"] for _ in range(20)}
        assert sessions(service_db) == len(pids)  # the arbiter's own session is gone
        log = service.log()
    assert "held 1 idle and 0 leased connection(s) before forking a worker" in log
    assert "call postfork.install(pool)" in log
