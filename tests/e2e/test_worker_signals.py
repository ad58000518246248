"""A server's stop signal stops every worker the first time, whichever thread the kernel hands
it to. postfork's helper threads (upkeep timer, deadline watchdog) block the asynchronous
signals, so a signal to a worker reaches its main thread: uWSGI's handler exits from the
thread that received it, and from a helper thread the interpreter's shutdown waited for the
main thread, asleep in uWSGI's accept loop, until the master's mercy ran out (seen as the
topology tests' 20 s stops: 3 hangs in 26 stops before, 0 in 15 after)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from postfork.pool.deadline import WATCHDOG
from postfork.threads import ASYNCHRONOUS, start_daemon
from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.runner import get

from .test_topology_http import uwsgi_cluster_app

STOPS = 6
PROCESSES = 4  # uwsgi_cluster_app's
MERCY = 10.0  # well below uWSGI's default worker mercy (60 s) that a hung worker waits out


def with_notes_table(db: EmbeddedMariaDB) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS postfork.notes (id INT AUTO_INCREMENT PRIMARY KEY, "
        "body VARCHAR(40) NOT NULL)"
    )


def blocked_signals(thread: threading.Thread) -> set[int]:
    """The signals the kernel will not deliver to ``thread`` (its SigBlk in /proc)."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    mask = int(
        next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16
    )
    return {number for number in range(1, 65) if mask & (1 << (number - 1))}


def test_postforks_threads_leave_the_stop_signals_to_the_main_thread() -> None:
    release = threading.Event()
    thread = start_daemon(release.wait, "postfork-test")
    try:
        blocked = blocked_signals(thread)
        for stop in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
            assert stop in blocked
        assert {int(s) for s in ASYNCHRONOUS} <= blocked
        assert signal.SIGSEGV not in blocked  # a fault still reaches the thread that made it
        assert signal.SIGTERM not in blocked_signals(threading.main_thread())  # untouched
    finally:
        release.set()


def test_the_deadline_watchdog_is_started_that_way() -> None:
    from postfork import deadline

    with deadline(60.0) as limit:
        token = WATCHDOG.watch(limit, -1)
        try:
            assert WATCHDOG._thread is not None
            assert signal.SIGTERM in blocked_signals(WATCHDOG._thread)
        finally:
            WATCHDOG.unwatch(token)


def test_every_stop_signal_stops_a_plainly_configured_uwsgi_at_once(
    service_db: EmbeddedMariaDB,
) -> None:
    """An app of its own (tests/e2e/apps/clusterapp.py, one pool on the primary) under uWSGI
    configured plainly (threads enabled, the interpreter's teardown on exit), every worker
    up and serving, then SIGTERM to every process at once, as systemd's default
    KillMode=control-group sends it; several times. Before the fix 3 stops in 26 hung.

    "Every worker up and serving" is waited for: uWSGI's master loses a SIGTERM that arrives
    while it is still starting (2.0.31, no postfork at all, 8 processes, SIGTERM 20-250 ms after
    launch: the first SIGTERM was lost 18 times in 40; sent once every worker had answered a
    request, 0 in 30); 30 requests did not make sure of it (one stop in about 60 under load
    found the master still spawning its fourth worker)."""
    with_notes_table(service_db)
    for _ in range(STOPS):
        app = uwsgi_cluster_app(service_db.url, [], CLUSTER="primary").start()
        assert app.process is not None
        try:
            answered: set[int] = set()
            deadline = time.monotonic() + MERCY
            while len(answered) < PROCESSES:  # every worker has served (see the docstring)
                assert time.monotonic() < deadline, app.log()[-3000:]
                reply = get(app.port, "/notes")
                assert reply.status == 200
                answered.add(reply.body["pid"])
        finally:
            started = time.monotonic()
            os.killpg(app.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                app.process.wait(MERCY)
            took = time.monotonic() - started
            app.stop()  # what is left, if anything
        assert took < MERCY, app.log()[-3000:]


@pytest.mark.parametrize("when", ["set-up", "after"])
def test_a_stop_signal_before_uwsgis_worker_handlers_ends_that_worker_alone(
    service_db: EmbeddedMariaDB, tmp_path: Path, when: str
) -> None:
    """A new uWSGI worker runs its master's handlers (installed from C) until uWSGI installs
    its own, after the post-fork hooks. A SIGTERM there, while postfork drops what the worker
    inherited (``set-up``) or after postfork's set-up (``after``), ran the master's shutdown in
    the worker: every sibling signalled ("killing workers", seen as a stop that hung for the
    master's mercy under load), the signal swallowed. Held during the set-up, left to its
    default action after it, the signal ends that worker alone and the server serves on."""
    with_notes_table(service_db)
    mark = tmp_path / "signal-at-fork"
    app = uwsgi_cluster_app(
        service_db.url, [], module="tests.e2e.apps.signalled_at_fork:application",
        CLUSTER="primary", SIGNAL_AT_FORK_MARK=str(mark), SIGNAL_AT_FORK_WHEN=when,
    ).start()  # fmt: skip
    try:
        assert {get(app.port, "/notes").status for _ in range(20)} == {200}
        mark.touch()
        deadline = time.monotonic() + MERCY
        while mark.exists() or "killed by signal 15" not in app.log():  # max-requests recycles
            assert time.monotonic() < deadline, app.log()[-3000:]
            assert get(app.port, "/notes").status == 200
        replies = [get(app.port, "/notes") for _ in range(20)]
        log = app.log()
    finally:
        app.stop()
    assert "killing workers" not in log, log[-3000:]  # no sibling was signalled
    assert log.count("killed by signal") == 1, log[-3000:]  # the one signalled, by its signal
    assert {reply.status for reply in replies} == {200}
