"""uWSGI's respawn gap: with postfork's accelerator a recycled worker is replaced in
milliseconds, not on the master's next one-second tick; without it, the slow path shows.

One worker and max-requests = 5: every sixth request waits for the replacement, so its latency
is the respawn gap plus one warm request.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import time

import pytest

from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import Response, ServiceProcess, free_port, get

ACCELERATOR_ON = "respawn accelerator on"
TICK_MS = 1000.0  # the uWSGI master's tick: without the accelerator a respawn waits for it


def beat_the_tick(gaps: list[float]) -> bool:
    """Every respawn beat the master's tick, and half of them came in under half of it: the
    control's slow path shows a median above half the tick. Bounds from uWSGI's tick, not from
    this machine's speed."""
    return max(gaps) < TICK_MS and statistics.median(gaps) < TICK_MS / 2


def master_catches_sigchld(service: ServiceProcess) -> bool:
    """Ground truth from the kernel: is a SIGCHLD handler installed in the uWSGI master?"""
    assert service.process is not None
    with open(f"/proc/{service.process.pid}/status") as status:
        caught = next(line for line in status if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGCHLD - 1)))


def aborted_clients(db: EmbeddedMariaDB) -> int:
    return int(db.execute("SHOW GLOBAL STATUS LIKE 'Aborted_clients'")[0][1])


def one_worker(
    db: EmbeddedMariaDB, env: dict[str, str] | None = None, extra: tuple[str, ...] = ()
) -> ServiceProcess:
    options = ServeOptions(
        server="uwsgi",
        processes=1,
        max_requests=5,
        bind=f"127.0.0.1:{free_port()}",
        extra=("--max-requests-delta", "0", *extra),
    )
    return ServiceProcess(db.url, options, env=env or {})


def sequential(service: ServiceProcess, count: int) -> list[Response]:
    return [get(service.port, f"/v1/accounts/{i % 50 + 1}/summary") for i in range(count)]


def first_after_respawn_ms(responses: list[Response]) -> list[float]:
    return [r.elapsed * 1e3 for r in responses[1:] if r.worker[1] == 1]


@pytest.mark.parametrize("lazy_apps", [False, True], ids=["preloaded", "lazy-apps"])
def test_accelerated_respawns_beat_the_one_second_tick(
    service_db: EmbeddedMariaDB, lazy_apps: bool
) -> None:
    aborted_before = aborted_clients(service_db)
    with one_worker(service_db, extra=("--lazy-apps",) if lazy_apps else ()) as service:
        responses = sequential(service, 60)
        log = service.log()
        assert master_catches_sigchld(service)
        aborted_while_serving = aborted_clients(service_db) - aborted_before
    assert [r.status for r in responses] == [200] * 60
    gaps = first_after_respawn_ms(responses)
    assert len(gaps) >= 10  # every respawn observed
    assert beat_the_tick(gaps), gaps
    assert ACCELERATOR_ON in log or lazy_apps  # lazy-apps: no install() in the master
    # every recycled worker closed its session cleanly (COM_QUIT) although the interpreter
    # teardown is skipped (skip-atexit-teardown): none was left for the server to abort
    assert aborted_while_serving == 0


def test_without_the_accelerator_every_respawn_waits_for_the_tick(
    service_db: EmbeddedMariaDB,
) -> None:
    """The control: the same run with the accelerator off shows uWSGI's slow path."""
    with one_worker(service_db, env={"POSTFORK_ACCELERATE_RESPAWNS": "false"}) as service:
        responses = sequential(service, 30)
        log = service.log()
        assert not master_catches_sigchld(service)
    assert [r.status for r in responses] == [200] * 30
    gaps = first_after_respawn_ms(responses)
    assert len(gaps) >= 4
    assert statistics.median(gaps) > TICK_MS / 2, gaps
    assert ACCELERATOR_ON not in log


def test_accelerator_survives_a_graceful_reload_of_the_master(service_db: EmbeddedMariaDB) -> None:
    with one_worker(service_db) as service:
        assert sequential(service, 6)[-1].status == 200
        assert service.process is not None
        os.kill(service.process.pid, signal.SIGHUP)  # uWSGI graceful reload: the master re-execs
        deadline = time.monotonic() + 30
        while service.log().count(ACCELERATOR_ON) < 2:
            assert time.monotonic() < deadline, service.log()[-3000:]
            time.sleep(0.1)
        responses = sequential(service, 30)
        log = service.log()
        assert master_catches_sigchld(service)
    assert [r.status for r in responses] == [200] * 30
    gaps = first_after_respawn_ms(responses)
    assert beat_the_tick(gaps), gaps
    assert re.search(r"gracefully (re)?loading|reloading", log, re.IGNORECASE), log[-2000:]
