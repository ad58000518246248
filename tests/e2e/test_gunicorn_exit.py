"""gunicorn workers recycled by max_requests exit without the interpreter's teardown (as uWSGI's
skip-atexit-teardown does), after their exit line is logged and their connections closed; a
worker that fails to boot still gets gunicorn's own handling and exit code."""

from __future__ import annotations

import re

import pytest

from postfork.tools.embedded import EmbeddedMariaDB
from postfork.tools.serve.command import ServeOptions
from postfork.tools.serve.runner import ServiceProcess, free_port, get

FAST = "recycled: exiting without interpreter teardown"


def recycle(db: EmbeddedMariaDB, env: dict[str, str]) -> str:
    options = ServeOptions(
        server="gunicorn",
        processes=2,
        max_requests=5,
        bind=f"127.0.0.1:{free_port()}",
        extra=("--max-requests-jitter", "0"),
    )
    with ServiceProcess(db.url, options, env=env) as service:
        for n in range(30):
            assert get(service.port, f"/v1/accounts/{n % 50 + 1}/summary").status == 200
        return service.log()


def test_a_recycled_worker_exits_fast_with_its_exit_line_and_clean_close(
    service_db: EmbeddedMariaDB,
) -> None:
    log = recycle(service_db, {})
    fast = re.findall(rf"pid (\d+): {FAST}", log)
    assert len(fast) >= 4  # 30 requests, 5 per worker: about 6 recycled workers
    for pid in fast:  # each said why it left before it went, so the logs were flushed
        assert re.search(rf"pid {pid}: exiting after 5 request\(s\)", log), pid
    assert "exited with code" not in log and "Traceback" not in log
    aborted = service_db.execute("SHOW GLOBAL STATUS LIKE 'Aborted_clients'")
    assert int(aborted[0][1]) == 0  # connections closed cleanly, not dropped by _exit


def test_the_fast_exit_can_be_turned_off(service_db: EmbeddedMariaDB) -> None:
    log = recycle(service_db, {"POSTFORK_FAST_WORKER_EXIT": "false"})
    assert FAST not in log and "exiting after 5 request(s)" in log


def test_a_worker_that_fails_to_boot_keeps_gunicorns_handling(
    service_db: EmbeddedMariaDB,
) -> None:
    options = ServeOptions(server="gunicorn", processes=1, bind=f"127.0.0.1:{free_port()}")
    env = {"POSTFORK_PRELOAD": "false", "POSTFORK_CONNECT": "bogus"}
    with pytest.raises(RuntimeError, match="server exited early") as raised:
        ServiceProcess(service_db.url, options, env=env).start(timeout=30)
    assert "Worker failed to boot" in str(raised.value) and FAST not in str(raised.value)
