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


WARM_WITHIN = 10.0  # seconds for both workers' post-fork warm-up, however loaded the machine


def sessions(db: EmbeddedMariaDB) -> set[int]:
    """The server's client sessions (ids), but the one asking. A test counts the sessions that
    appeared since it began: the module's server may still be dropping an earlier test's."""
    rows = db.execute(
        "SELECT ID FROM information_schema.PROCESSLIST "
        "WHERE COMMAND <> 'Daemon' AND ID <> CONNECTION_ID()"
    )
    return {int(row[0]) for row in rows}


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
    before = sessions(service_db)
    with service:
        deadline = time.monotonic() + WARM_WITHIN
        while len(sessions(service_db) - before) < 2:  # both workers' post-fork warm-up
            assert time.monotonic() < deadline, service.log()[-3000:]
            time.sleep(0.05)
        seen = {}
        for _ in range(20):
            body = get(port, "/").body
            seen[body["pid"]] = body["connection_id"]
        ours = sessions(service_db) - before
        assert len(ours) == 2 and set(seen.values()) <= ours  # one per worker, none for the master
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
    before = sessions(service_db)
    with service:
        time.sleep(0.5)
        # no warm-up without install(): each worker connects on its first request
        replies = [get(port, "/").body for _ in range(20)]
        ours = sessions(service_db) - before
        # the workers' sessions alone: the arbiter's own is gone (the module's server may
        # still have been dropping an earlier test's when this one began: seen once, loaded)
        assert ours == {reply["connection_id"] for reply in replies}, service.log()[-3000:]
        log = service.log()
    assert "held 1 idle and 0 leased connection(s) before forking a worker" in log
    assert "call postfork.install(pool)" in log
