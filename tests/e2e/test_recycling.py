"""The service under real uWSGI and gunicorn with aggressive recycling (max-requests = 5):
workers respawn, and in warm mode no request ever pays a connect; in lazy mode (the story's
"before") exactly each worker's first request does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import Response, ServiceProcess, free_port, from_clients, get

# Several hundred requests: each of the 2 workers is recycled about 30 times.
REQUESTS = {"uwsgi": 300, "gunicorn": 300}
CONCURRENCY = 2
PROCESSES = 2
POOL_SIZE = 2

SCENARIOS = [
    pytest.param("uwsgi", "warm", (), {}, id="uwsgi-warm"),
    pytest.param("uwsgi", "warm", ("--lazy-apps",), {}, id="uwsgi-warm-lazy-apps"),
    pytest.param("uwsgi", "postfork", (), {}, id="uwsgi-postfork"),
    pytest.param("uwsgi", "lazy", (), {}, id="uwsgi-lazy"),
    pytest.param("uwsgi", "lazy", ("--lazy-apps",), {}, id="uwsgi-lazy-lazy-apps"),
    pytest.param("gunicorn", "warm", (), {}, id="gunicorn-warm-preload"),
    pytest.param("gunicorn", "warm", (), {"POSTFORK_PRELOAD": "false"}, id="gunicorn-warm"),
    pytest.param("gunicorn", "lazy", (), {}, id="gunicorn-lazy-preload"),
    pytest.param("gunicorn", "lazy", (), {"POSTFORK_PRELOAD": "false"}, id="gunicorn-lazy"),
]


def server_extra(server: str, extra: tuple[str, ...]) -> tuple[str, ...]:
    # exactly max-requests = 5 per worker: no uWSGI delta, no gunicorn jitter
    if server == "uwsgi":
        return ("--max-requests-delta", "0", *extra)
    return ("--max-requests-jitter", "0", *extra)


class ConnectionSampler:
    """Samples the private server's Threads_connected while the load runs."""

    def __init__(self, db: EmbeddedMariaDB) -> None:
        self.db, self.peak, self._stop = db, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rows = self.db.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
            self.peak = max(self.peak, int(rows[0][1]) - 1)  # not counting the sampler itself
            time.sleep(0.02)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def drive(port: int, total: int) -> list[Response]:
    def client(offset: int) -> Iterator[Response]:
        for i in range(offset, total, CONCURRENCY):
            yield get(port, f"/v1/accounts/{i % 50 + 1}/summary")

    return from_clients(CONCURRENCY, client)


@pytest.fixture
def run_service(service_db: EmbeddedMariaDB) -> Iterator[object]:
    started: list[ServiceProcess] = []

    def run(
        server: str, connect: str, extra: tuple[str, ...], env: dict[str, str]
    ) -> ServiceProcess:
        options = ServeOptions(
            server=server,
            processes=PROCESSES,
            max_requests=5,
            bind=f"127.0.0.1:{free_port()}",
            connect=connect,
            extra=server_extra(server, extra),
        )
        service = ServiceProcess(
            service_db.url, options, env={"POSTFORK_POOL_SIZE": str(POOL_SIZE), **env}
        )
        started.append(service)
        return service.start()

    yield run
    for service in started:
        service.stop()


@pytest.mark.parametrize(("server", "connect", "extra", "env"), SCENARIOS)
def test_recycled_workers_are_warm_before_their_first_request(
    run_service,
    service_db: EmbeddedMariaDB,
    server: str,
    connect: str,
    extra: tuple[str, ...],
    env: dict[str, str],
) -> None:
    service = run_service(server, connect, extra, env)
    with ConnectionSampler(service_db) as sampler:
        responses = drive(service.port, REQUESTS[server])
    log = service.log()
    assert [r.status for r in responses] == [200] * REQUESTS[server], log[-2000:]
    pids = {r.worker[0] for r in responses}
    assert len(pids) >= REQUESTS[server] // 5 // 2, f"too few respawns observed: {len(pids)} pids"
    paid = [r for r in responses if r.timing["db-connect"] > 0]
    if connect == "lazy":
        # exactly each worker's first database request (a /healthz probe may precede it)
        firsts = {pid: min(r.worker[1] for r in responses if r.worker[0] == pid) for pid in pids}
        assert sorted(r.worker for r in paid) == sorted(firsts.items())
    else:
        assert paid == []  # no request ever waited for a connect
    # bounded: never more than each live worker's pool, plus workers being replaced
    assert sampler.peak <= 2 * PROCESSES * POOL_SIZE, sampler.peak
    assert "Traceback" not in log


@pytest.mark.parametrize("lazy_apps", [False, True])
def test_a_min_worker_lifetime_that_defeats_max_requests_is_said_once(
    service_db: EmbeddedMariaDB, lazy_apps: bool
) -> None:
    """uWSGI recycles no worker younger than min-worker-lifetime (10 s by default): with only
    max-requests in their own ini, users saw no recycling at all and nothing said why. The
    shipped ini sets 0 (no warning); raised back to 10, the master says so, once."""
    lazy = ("--lazy-apps",) if lazy_apps else ()
    for extra, warned in (((), False), (("--min-worker-lifetime", "10"), True)):
        options = ServeOptions(
            processes=2, max_requests=3, bind=f"127.0.0.1:{free_port()}", extra=(*lazy, *extra)
        )
        with ServiceProcess(service_db.url, options) as service:
            for n in range(12):  # workers would recycle at 3 requests each
                assert get(service.port, f"/v1/accounts/{n % 50 + 1}/summary").status == 200
            log = service.log()
        assert log.count("min-worker-lifetime is 10 s") == (1 if warned else 0), log[-2000:]


def test_workers_that_would_recycle_together_are_said_once(service_db: EmbeddedMariaDB) -> None:
    """uWSGI's answer to gunicorn's max_requests_jitter is max-requests-delta: at 0, workers
    started together reach max-requests together under an even load and are all replaced at
    once. The shipped ini sets 10 (no warning); at 0 the master says so, once."""
    for extra, warned in (((), False), (("--max-requests-delta", "0"), True)):
        options = ServeOptions(
            processes=2, max_requests=3, bind=f"127.0.0.1:{free_port()}", extra=extra
        )
        with ServiceProcess(service_db.url, options) as service:
            assert get(service.port, "/v1/accounts/1/summary").status == 200
            log = service.log()
        said = "max-requests is 3 with max-requests-delta 0 and 2 processes"
        assert log.count(said) == (1 if warned else 0), log[-2000:]
