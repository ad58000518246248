"""The database stops under load while uWSGI keeps recycling workers (max-requests = 5), then
comes back: no request hangs past the timeouts, the outage is answered with JSON 503s, workers
that cannot warm still start (no crash loop), and success returns within a second."""

from __future__ import annotations

import threading
import time

from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import Response, ServiceProcess, free_port, get
from tests.conftest import PrivateServerFactory

from .conftest import seed_server

CLIENTS = 3
TIMEOUT_BOUND = 3.0  # the service's connect and checkout timeouts are 2 s


def test_outage_under_load_with_recycling(private_server: PrivateServerFactory) -> None:
    db = private_server()
    seed_server(db)
    options = ServeOptions(processes=2, max_requests=5, bind=f"127.0.0.1:{free_port()}")
    answers: list[tuple[float, Response]] = []  # (sent at, response)
    lock = threading.Lock()
    stop = threading.Event()

    with ServiceProcess(db.url, options) as service:

        def client(offset: int) -> None:
            n = offset
            while not stop.is_set():
                sent = time.monotonic()
                response = get(service.port, f"/v1/accounts/{n % 50 + 1}/summary", timeout=15)
                with lock:
                    answers.append((sent, response))
                n += CLIENTS

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        db.terminate()
        down_at = time.monotonic()
        time.sleep(4.0)  # several recycling rounds without a database
        restart_at = time.monotonic()
        db.start()  # returns once the server accepts connections
        back_at = time.monotonic()
        time.sleep(3.0)
        stop.set()
        for thread in threads:
            thread.join(30)
        log = service.log()

    statuses = {response.status for _, response in answers}
    assert statuses <= {200, 503}, statuses  # never a 500, never a refused connection
    assert max(response.elapsed for _, response in answers) < TIMEOUT_BOUND
    during = [r for sent, r in answers if down_at + 0.5 < sent < restart_at]
    assert len(during) >= 10 and all(r.status == 503 for r in during)
    assert all(r.headers["retry-after"] == "1" for r in during)
    assert all(r.body == {"error": "database unavailable, retry shortly"} for r in during)
    workers_during = {r.worker[0] for r in during}
    assert len(workers_during) >= 3  # workers kept recycling and starting through the outage
    first_ok = min(sent for sent, r in answers if sent > back_at and r.status == 200)
    assert first_ok - back_at < 1.0
    assert all(r.status == 200 for sent, r in answers if sent > first_ok + 0.5)
    assert "respawning too fast" not in log and "Traceback" not in log
