"""Workers recycled by max-requests exit at once once their exit hooks ran: gunicorn's without
the interpreter's teardown (as uWSGI's skip-atexit-teardown does), uWSGI's without the C
teardown that follows its atexit hook; after their exit line is logged and their connections
closed. A gunicorn worker that fails to boot still gets gunicorn's own handling and exit code;
the uWSGI master sees the exit code it expects and respawns as usual."""

from __future__ import annotations

import os
import re
import time
from http.client import RemoteDisconnected

import pytest

from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import ServiceProcess, free_port, get

FAST = "recycled: exiting without teardown"
EXACT = {
    "gunicorn": ("--max-requests-jitter", "0"),
    "gunicorn-uvicorn": ("--max-requests-jitter", "0"),
    "uwsgi": ("--max-requests-delta", "0"),
}


def aborted_clients(db: EmbeddedMariaDB) -> int:
    return int(db.execute("SHOW GLOBAL STATUS LIKE 'Aborted_clients'")[0][1])


EXITED = re.compile(r"pid \d+: exiting after \d+ request\(s\)")


def recycle(
    db: EmbeddedMariaDB, env: dict[str, str], server: str = "gunicorn", exits: int = 4
) -> tuple[str, int]:
    """The server's log once ``exits`` workers have left at their limit, and the connections
    the database saw dropped without a goodbye meanwhile (not counting the server's own stop).
    gunicorn and uWSGI count requests in step (5 a worker: 30 requests make 6 exits); uvicorn's
    worker notices its limit on a 0.1 s tick, and one worker can answer every request of a
    fast client in less than a tick, so requests go on (bounded) until enough have left."""
    options = ServeOptions(
        server=server,
        processes=2,
        max_requests=5,
        bind=f"127.0.0.1:{free_port()}",
        extra=EXACT[server],
    )
    with ServiceProcess(db.url, options, env=env) as service:
        before = aborted_clients(db)
        reset = 0
        for n in range(2000):
            try:
                assert get(service.port, f"/v1/accounts/{n % 50 + 1}/summary").status == 200
            except (RemoteDisconnected, ConnectionResetError):
                if server != "gunicorn-uvicorn":
                    raise
                reset += 1  # uvicorn's shutdown race, one a recycle at most (docs/how-to/asgi.md)
            if n >= 30 and len(EXITED.findall(service.log())) >= exits:
                break
        time.sleep(0.5)  # the last recycled worker has gone, and the database has noticed
        log = service.log()
        assert len(EXITED.findall(log)) >= exits, log
        assert reset <= len(EXITED.findall(log))
        return log, aborted_clients(db) - before


@pytest.mark.parametrize("server", ["gunicorn", "uwsgi", "gunicorn-uvicorn"])
def test_a_recycled_worker_exits_fast_with_its_exit_line_and_clean_close(
    service_db: EmbeddedMariaDB, server: str
) -> None:
    """gunicorn-uvicorn: uvicorn's worker counts its own requests (and notices its limit on a
    0.1 s tick, so it may serve more)."""
    log, aborted = recycle(service_db, {}, server)
    fast = re.findall(rf"pid (\d+): {FAST}", log)
    served = r"\d+" if server == "gunicorn-uvicorn" else "5"
    recycled = re.findall(rf"pid (\d+): exiting after {served} request\(s\)", log)
    assert len(fast) >= 4
    assert set(fast) == set(recycled)  # each said why it left before it went: logs flushed
    assert "exited with code" not in log and "Traceback" not in log
    if server == "uwsgi":  # the master took it for a normal end and replaced it
        assert log.count("killed successfully") >= len(fast)
        assert "DAMN" not in log and "OOPS" not in log
    assert aborted == 0  # connections closed cleanly, not dropped by _exit


@pytest.mark.parametrize("server", ["gunicorn", "uwsgi"])
def test_the_fast_exit_can_be_turned_off(service_db: EmbeddedMariaDB, server: str) -> None:
    log, _ = recycle(service_db, {"POSTFORK_FAST_WORKER_EXIT": "false"}, server)
    assert FAST not in log and "exiting after 5 request(s)" in log


def test_a_worker_that_fails_to_boot_keeps_gunicorns_handling(
    service_db: EmbeddedMariaDB,
) -> None:
    options = ServeOptions(server="gunicorn", processes=1, bind=f"127.0.0.1:{free_port()}")
    env = {"POSTFORK_PRELOAD": "false", "POSTFORK_CONNECT": "bogus"}
    with pytest.raises(RuntimeError, match="server exited early") as raised:
        ServiceProcess(service_db.url, options, env=env).start(timeout=30)
    assert "Worker failed to boot" in str(raised.value) and FAST not in str(raised.value)


def test_a_uwsgi_worker_past_its_limit_but_too_young_is_stopped_the_usual_way(
    service_db: EmbeddedMariaDB,
) -> None:
    """min-worker-lifetime keeps it from recycling; when the server stops it, its exit hooks
    run in a signal handler, where the fast exit (which takes the logs' locks) must not."""
    options = ServeOptions(
        server="uwsgi",
        processes=1,
        max_requests=5,
        bind=f"127.0.0.1:{free_port()}",
        extra=("--max-requests-delta", "0", "--min-worker-lifetime", "60"),
    )
    service = ServiceProcess(service_db.url, options).start()
    try:
        pids = {get(service.port, "/v1/accounts/1/summary").worker[0] for _ in range(12)}
        assert len(pids) == 1  # too young to recycle
    finally:
        service.stop()
    log = service.log()
    os.unlink(service.log_path)
    assert "goodbye to uWSGI" in log  # stopped by the server, which waited for it
    assert FAST not in log
