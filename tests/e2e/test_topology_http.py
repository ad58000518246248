"""postfork.Cluster in an app of its own (tests/e2e/apps/clusterapp.py) under real uWSGI (4
processes, max-requests = 50) on a real primary and two replicas, broken under HTTP load. Each
failure runs first against the control (a plain pool per server, reads spread by hand), which
must show the errors the cluster avoids."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from postfork import DatabaseURL
from postfork_tools.replication import EmbeddedReplicaSet
from postfork_tools.serve.command import ServeOptions, _executable
from postfork_tools.serve.runner import ServiceProcess, free_port, get

pytestmark = pytest.mark.timeout(300)

ROOT = str(Path(__file__).resolve().parents[2])


def uwsgi_app(replica_set: EmbeddedReplicaSet, **env: str) -> ServiceProcess:
    return uwsgi_cluster_app(replica_set.primary_url, replica_set.replica_urls, **env)


def uwsgi_cluster_app(
    primary_url: DatabaseURL,
    replica_urls: list[DatabaseURL],
    module: str = "tests.e2e.apps.clusterapp:application",
    **env: str,
) -> ServiceProcess:
    """tests/e2e/apps/clusterapp.py under uWSGI with a plain configuration (no
    skip-atexit-teardown: the interpreter's teardown runs when a worker exits)."""
    port = free_port()
    argv = [
        _executable("uwsgi"),
        "--master",
        "--processes", "4",
        "--http-socket", f"127.0.0.1:{port}",
        "--chdir", ROOT,
        "--module", module,
        "--need-app",
        "--die-on-term",
        "--enable-threads",
        "--max-requests", "50",
        "--min-worker-lifetime", "0",
        "--shared-py-import", "postfork.accelerate",
        "--disable-logging",
    ]  # fmt: skip
    return ServiceProcess(
        primary_url,
        ServeOptions(server="uwsgi", bind=f"127.0.0.1:{port}"),
        argv=argv,
        env={
            "DATABASE_URL": primary_url.render_secret(),
            "REPLICA_URLS": ",".join(url.render_secret() for url in replica_urls),
            "PYTHONPATH": ROOT + os.pathsep + os.pathsep.join(sys.path),
            **env,
        },
    )


class Statuses(Counter[int]):
    """Answers by status (0: no answer), with the first few failures' bodies: an assertion
    on the counts shows why requests failed."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[object] = []

    def __repr__(self) -> str:
        return f"{dict(self)} failures: {self.failures}"


def load(port: int, seconds: float, during: object = None, clients: int = 4) -> Statuses:
    """``clients`` threads of GET /notes for ``seconds``; ``during()`` runs after a third of
    it."""
    statuses = Statuses()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < stop:
            try:
                answer = get(port, "/notes", timeout=10)
                status, body = answer.status, answer.body
            except OSError as exc:
                status, body = 0, repr(exc)
            with lock:
                statuses[status] += 1
                if status != 200 and len(statuses.failures) < 5:
                    statuses.failures.append(body)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    if during is not None:
        time.sleep(seconds / 3)
        during()  # type: ignore[operator]
    for thread in threads:
        thread.join(seconds + 30)
    return statuses


def revive(replica_set: EmbeddedReplicaSet, index: int) -> None:
    replica = replica_set.replicas[index]
    if replica.pid is None:
        replica.start()
        replica_set.follow(replica)
    replica_set.wait_for_replicas()


def test_reads_go_to_both_replicas_and_writes_to_the_primary(
    replica_set: EmbeddedReplicaSet,
) -> None:
    with uwsgi_app(replica_set) as app:
        write = get(app.port, "/notes", method="POST")
        assert write.status == 200 and write.body["port"] == replica_set.primary.port
        time.sleep(1.3)  # the writing worker reads from the primary for read_your_writes (1.2 s)
        ports = Counter(get(app.port, "/notes").body["port"] for _ in range(60))
    assert set(ports) == {replica.port for replica in replica_set.replicas}, ports


READS, WRITES = 60, 30  # each reader's reads at least; the writes they are served beside


def test_with_writes_flowing_other_clients_reads_stay_on_the_replicas(
    replica_set: EmbeddedReplicaSet,
) -> None:
    """One client writes without pause, three read: a write's read-your-writes window belongs
    to its request, so the readers, served by the same workers' threads right after, never
    follow it to the primary (kept per thread, it sent most of their reads there)."""
    ports: Counter[int] = Counter()
    writes: Counter[int] = Counter()
    stop = threading.Event()
    deadline = time.monotonic() + 60

    def writer(port: int) -> None:
        while not stop.is_set():
            writes[get(port, "/notes", method="POST").status] += 1

    def reader(port: int) -> None:
        # reads go on until the writer has written WRITES times, so they are served while writes
        # flow however fast this machine writes
        reads = 0
        while (reads < READS or sum(writes.values()) < WRITES) and time.monotonic() < deadline:
            answer = get(port, "/notes")
            ports[answer.body["port"] if answer.status == 200 else answer.status] += 1
            reads += 1

    with uwsgi_app(replica_set) as app:
        threads = [threading.Thread(target=writer, args=(app.port,))]
        threads += [threading.Thread(target=reader, args=(app.port,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads[1:]:
            thread.join(60)
        stop.set()
        threads[0].join(30)
    assert writes[200] >= WRITES and set(writes) == {200}, writes
    assert set(ports) == {replica.port for replica in replica_set.replicas}, ports


@pytest.mark.parametrize("mode", ["plain", "cluster"])
def test_a_replica_killed_under_load_costs_idempotent_reads_nothing(
    replica_set: EmbeddedReplicaSet, mode: str
) -> None:
    victim = replica_set.replicas[0]
    try:
        with uwsgi_app(replica_set, CLUSTER=mode) as app:
            statuses = load(app.port, 3.0, during=victim.kill)
    finally:
        revive(replica_set, 0)
    assert statuses[200] > 100, statuses
    if mode == "plain":
        assert sum(n for status, n in statuses.items() if status != 200) > 0, statuses
    else:
        assert set(statuses) == {200}, statuses


@pytest.mark.parametrize("mode", ["primary", "cluster"])
def test_primary_stopped_writes_get_a_clean_503_reads_go_on_writes_resume_within_a_second(
    replica_set: EmbeddedReplicaSet, mode: str
) -> None:
    primary = replica_set.primary
    with uwsgi_app(replica_set, CLUSTER=mode) as app:
        assert get(app.port, "/notes", method="POST").status == 200
        primary.terminate()
        try:
            for _ in range(8):  # every worker, whatever it held
                started = time.monotonic()
                answer = get(app.port, "/notes", method="POST")
                assert answer.status == 503, answer.body
                assert answer.headers["retry-after"] == "1"
                assert time.monotonic() - started < 1.5  # checkout_timeout is 1 s
            statuses = load(app.port, 1.5, clients=2)
            if mode == "primary":  # the control: everything on the primary, reads fail too
                assert statuses[503] > 0, statuses
            else:
                assert set(statuses) == {200}, statuses
        finally:
            primary.start()
        back = time.monotonic()
        resumed = [get(app.port, "/notes", method="POST").status for _ in itertools.repeat(0, 1)]
        while resumed[-1] != 200 and time.monotonic() - back < 5:
            time.sleep(0.02)
            resumed.append(get(app.port, "/notes", method="POST").status)
        recovery = time.monotonic() - back
        assert resumed[-1] == 200 and recovery < 1.0, (resumed, recovery)
    replica_set.wait_for_replicas()


@pytest.mark.parametrize("server", ["uwsgi", "uvicorn"])
def test_django_reads_on_the_replicas_through_the_router_writes_on_the_primary(
    replica_set: EmbeddedReplicaSet, server: str
) -> None:
    """The replica router and its read-your-writes window under WSGI and under an ASGI server
    (uvicorn --workers 2: each request's sync code on a thread of its own)."""
    from .test_orm_apps import APPS, server_argv

    env = {
        "DATABASE_URL": replica_set.primary_url.render_secret(),
        "REPLICA_URLS": ",".join(url.render_secret() for url in replica_set.replica_urls),
        "PYTHONPATH": ROOT + os.pathsep + os.pathsep.join(sys.path),
        "DJANGO_SETTINGS_MODULE": "tests.e2e.apps.djangoapp.settings",
    }
    migrated = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    replica_set.wait_for_replicas()
    port = free_port()
    if server == "uwsgi":
        options = ServeOptions(server="uwsgi", bind=f"127.0.0.1:{port}")
        argv: list[str] | None = server_argv("uwsgi", APPS["django"], port, False)
    else:
        options = ServeOptions(
            server=server, processes=2, max_requests=0, bind=f"127.0.0.1:{port}",
            app="tests.e2e.apps.djangoapp.asgi:application",
        )  # fmt: skip
        argv = None  # the command postfork serve would run
    app = ServiceProcess(
        replica_set.primary_url, options, argv=argv, env=env, ready_path="/notes/0"
    )
    with app:
        written = get(port, "/notes?body=routed", method="POST")
        assert written.status == 200, written.body
        replica_set.wait_for_replicas()  # at once: the write's window ended with its request
        reads = [get(port, f"/notes/{written.body['id']}") for _ in range(30)]
        log = app.log()
    assert all(read.status == 200 and read.body["body"] == "routed" for read in reads), reads
    assert {read.body["db"] for read in reads} == {"replica1", "replica2"}, log[-2000:]
    assert "reads of 'default' routed over replica1, replica2" in log


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
def test_the_reference_service_reads_from_the_replicas_with_metrics_by_member(
    replica_set: EmbeddedReplicaSet, server: str
) -> None:
    from postfork_tools.service.schema import seed_database

    from .conftest import SMALL_PLAN

    seed_database(replica_set.primary_url, SMALL_PLAN)
    replica_set.wait_for_replicas()
    port = free_port()
    options = ServeOptions(server=server, processes=2, max_requests=20, bind=f"127.0.0.1:{port}")
    replicas = ",".join(url.render_secret() for url in replica_set.replica_urls)
    with ServiceProcess(
        replica_set.primary_url, options, env={"POSTFORK_REPLICA_URLS": replicas}
    ) as service:
        answers = [get(port, f"/v1/accounts/{n % 50 + 1}/summary") for n in range(60)]
        metrics = get(port, "/metrics").body
        log = service.log()
    assert all(answer.status == 200 for answer in answers), answers[-1]
    assert all(answer.timing["db-connect"] == 0.0 for answer in answers)  # warm, every worker
    series = dict(
        line.rsplit(" ", 1) for line in metrics.splitlines() if line.startswith("postfork_member")
    )
    for replica in replica_set.replicas:
        labels = f'member="{replica.socket}",role="replica"'
        assert series[f"postfork_member_up{{{labels}}}"] == "1.0"
        assert float(series[f"postfork_member_checkouts_total{{{labels}}}"]) >= 20
    primary = f'member="{replica_set.primary.socket}",role="primary"'
    # the primary only answers the checks and the warm-up's query, never a request's
    assert float(series[f"postfork_member_checkouts_total{{{primary}}}"]) < 30, log[-2000:]
