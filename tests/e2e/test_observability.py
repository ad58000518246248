"""Seeing the tail over real HTTP, each under uWSGI and gunicorn: the profiles (every
request), the first request after each fork, a sampling rate, slow-only profiles and .prof
files; the access log in both formats; worker start and exit lines; /metrics aggregated over
recycled workers."""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import Response, ServiceProcess, free_port, get

# the driver's connect, in pstats: MySQLdb's Connection.__init__ (postfork's adapter subclasses it)
DRIVER_CONNECT = re.compile(r"MySQLdb/connections\.py:\d+\(__init__\)")


def exact(server: str) -> tuple[str, ...]:
    return ("--max-requests-delta", "0") if server == "uwsgi" else ("--max-requests-jitter", "0")


def serve(
    db: EmbeddedMariaDB,
    server: str,
    connect: str,
    *,
    processes: int = 1,
    max_requests: int = 2,
    env: dict[str, str] | None = None,
) -> ServiceProcess:
    options = ServeOptions(
        server=server,
        processes=processes,
        max_requests=max_requests,
        bind=f"127.0.0.1:{free_port()}",
        connect=connect,
        extra=exact(server),
    )
    return ServiceProcess(db.url, options, env=env or {})


def requests(port: int, count: int) -> list[Response]:
    responses = [get(port, f"/v1/accounts/{i % 50 + 1}/summary") for i in range(count)]
    assert all(r.status == 200 for r in responses)
    return responses


def settled_log(service: ServiceProcess, responses: list[Response], timeout: float = 5.0) -> str:
    """The server's log once it holds every response's access-log line (a worker logs a request
    after sending it), or after ``timeout`` (with the access log off)."""
    deadline = time.monotonic() + timeout
    while True:
        log = service.log()
        logged = all(
            f"pid={pid} request={n} connect_ms=" in log or f'"pid":{pid},"request":{n},' in log
            for pid, n in (r.worker for r in responses)
        )
        if logged or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


PROFILE = re.compile(r"INFO postfork\.profile: profile pid=(\d+) request=(\d+) ")


def profiles(log: str) -> list[tuple[int, int, str]]:
    """(pid, request number, pstats text) for every profile in a server log."""
    starts = list(PROFILE.finditer(log))
    out = []
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(log)
        out.append((int(match.group(1)), int(match.group(2)), log[match.start() : end]))
    return out


@pytest.fixture(scope="module")
def db(service_db: EmbeddedMariaDB) -> Iterator[EmbeddedMariaDB]:
    yield service_db


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
@pytest.mark.parametrize("connect", ["lazy", "warm"])
def test_in_lazy_mode_every_other_profile_shows_the_connect(
    db: EmbeddedMariaDB, server: str, connect: str
) -> None:
    """processes = 1, max-requests = 2, every request profiled: in lazy mode each worker's
    first database request (every other profile) runs the driver's connect; in warm mode none
    does."""
    with serve(db, server, connect, env={"POSTFORK_PROFILE": "every=1,top=40"}) as service:
        responses = requests(service.port, 8)
        log = settled_log(service, responses)
    found = {(pid, n): text for pid, n, text in profiles(log)}
    served = [r.worker for r in responses]
    assert set(served) <= set(found)  # every request was profiled (and /healthz polls too)
    first_db_request = {
        (pid, min(n for p, n in served if p == pid)) for pid in {p for p, _ in served}
    }
    assert len(first_db_request) >= 4  # the worker was recycled every 2 requests
    with_connect = {key for key, text in found.items() if DRIVER_CONNECT.search(text)}
    assert with_connect == (first_db_request if connect == "lazy" else set())
    # respawn visibility: every recycled worker says it is going and why ...
    exits = re.findall(r"postfork\.worker: pid (\d+): exiting after 2 request\(s\)", log)
    assert len(exits) >= 3
    if server == "uwsgi":  # gunicorn says it itself: "Autorestarting worker after current request"
        assert "max-requests (2) reached" in log
    # ... and a warm worker says how long its start took and what it opened
    if connect == "warm":
        warm_lines = re.findall(r"postfork\.install: pid \d+: warm in [\d.]+ ms: 1 conn", log)
        assert len(warm_lines) >= 4


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
def test_first_requests_after_fork_with_a_json_access_log(db: EmbeddedMariaDB, server: str) -> None:
    # every function of the profile (top=): how far down the driver's connect ranks by
    # cumulative time depends on what else the machine runs (once, under load, below the
    # default top 25 behind the deadline watcher's thread start)
    env = {"POSTFORK_PROFILE": "first=1,top=1000", "POSTFORK_ACCESS_LOG": "json"}
    with serve(db, server, "lazy", max_requests=3, env=env) as service:
        responses = requests(service.port, 12)
        log = settled_log(service, responses)
    found = {(pid, n): text for pid, n, text in profiles(log)}
    assert found and all(n == 1 for _, n in found)  # only each worker's first request
    firsts = {r.worker for r in responses if r.worker[1] == 1}
    assert len(firsts) >= 3 and firsts <= set(found)
    unpaid = [found[key] for key in firsts if not DRIVER_CONNECT.search(found[key])]
    assert unpaid == [], unpaid[0][-4000:]  # lazy: they paid the connect
    access = [
        json.loads(line)
        for line in re.findall(r"INFO postfork\.access: (\{.*\})$", log, re.MULTILINE)
    ]
    by_worker = {(a["pid"], a["request"]): a for a in access}
    for response in responses:
        line = by_worker[response.worker]
        assert line["path"].startswith("/v1/accounts/") and line["status"] == 200
        assert line["method"] == "GET"
        assert (line["connect_ms"] > 0) == (response.timing["db-connect"] > 0)


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
def test_rate_files_and_the_slow_only_filter(
    db: EmbeddedMariaDB, server: str, tmp_path: Path
) -> None:
    env = {"POSTFORK_PROFILE": f"rate=1,dir={tmp_path}", "POSTFORK_ACCESS_LOG": "off"}
    with serve(db, server, "warm", processes=2, max_requests=50, env=env) as service:
        responses = requests(service.port, 10)
        log = settled_log(service, responses, timeout=0)  # .prof files precede the response
    names = {p.name for p in tmp_path.glob("*.prof")}
    assert {f"{pid}-{n:06d}.prof" for pid, n in (r.worker for r in responses)} <= names
    assert "postfork.access" not in log
    env = {"POSTFORK_PROFILE": "rate=1,slower_than_ms=60000"}
    with serve(db, server, "warm", processes=2, max_requests=50, env=env) as service:
        responses = requests(service.port, 10)
        log = settled_log(service, responses)
    assert profiles(log) == []
    for pid, number in (r.worker for r in responses):  # the default access log: logfmt
        assert re.search(rf"status=200 duration_ms=[\d.]+ pid={pid} request={number} ", log)


COUNT = "postfork_request_duration_seconds_count{"


def scrape(port: int) -> dict[str, float]:
    """Every sample of /metrics as {'name{label="v"}': value}."""
    response = get(port, "/metrics", timeout=10)
    assert response.status == 200
    samples = {}
    for family in text_string_to_metric_families(response.body):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
def test_metrics_add_up_over_recycled_workers(db: EmbeddedMariaDB, server: str) -> None:
    def total(samples: dict[str, float], paid: str) -> float:
        return samples[f'postfork_request_duration_seconds_count{{paid_connect="{paid}"}}']

    def served(samples: dict[str, float]) -> float:
        return total(samples, "true") + total(samples, "false")

    def scrape_at_least(port: int, count: float) -> dict[str, float]:
        """A worker records a request after sending its response: allow the last ones a
        moment to land."""
        deadline = time.monotonic() + 3
        while served(samples := scrape(port)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return samples

    with serve(db, server, "lazy", processes=2, max_requests=5) as service:
        requests(service.port, 30)
        before = scrape_at_least(service.port, 30)
        requests(service.port, 20)
        after = scrape_at_least(service.port, served(before) + 20)

    assert served(before) >= 30
    assert served(after) >= served(before) + 20  # recycled workers' counts are not lost
    assert total(after, "true") >= 10  # lazy: every new worker's first database request
    assert after["postfork_workers_started_total{}"] >= 10
    assert after["postfork_pool_connects_total{}"] >= after["postfork_workers_started_total{}"] - 1
    assert after["postfork_pool_checkouts_total{}"] >= 50
    assert after['postfork_pool_discards_total{reason="closed"}'] >= 0
    for name, value in before.items():  # counters never go backwards
        if name.endswith(("_total{}", "_count{}")) or "_bucket{" in name:
            assert after.get(name, 0) >= value, name
    # live gauges: only the live workers' pools (2 workers x pool size 2 at most)
    assert (
        after["postfork_pool_idle_connections{}"] + after["postfork_pool_in_use_connections{}"] <= 4
    )


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
def test_metrics_files_stay_few_and_counts_exact_under_recycling_and_scrapes(
    db: EmbeddedMariaDB, server: str
) -> None:
    """Recycling every 5 requests while a scraper hits /metrics without pause: the recycled
    workers' files are merged into the archive (the directory does not grow with respawns),
    and the request counter equals the requests sent, exactly, across compactions that race
    the scrapes."""
    sent = 300
    stop = threading.Event()
    scrapes: list[float] = []

    failures: list[str] = []

    def scraper(port: int) -> None:
        while not stop.is_set():
            try:
                samples = scrape(port)
            except Exception as exc:  # recorded, and the test fails on it
                failures.append(repr(exc))
                continue
            scrapes.append(sum(v for k, v in samples.items() if k.startswith(COUNT)))

    with serve(db, server, "warm", processes=2, max_requests=5) as service:
        directory = service._env["PROMETHEUS_MULTIPROC_DIR"]
        baseline = sum(v for k, v in scrape(service.port).items() if k.startswith(COUNT))
        thread = threading.Thread(target=scraper, args=(service.port,))
        thread.start()
        try:
            requests(service.port, sent)
        finally:
            stop.set()
            thread.join(30)
        time.sleep(1.0)  # the last recycled workers are reaped by their master
        final = scrape(service.port)  # a scrape compacts first: ended lives are merged
        files = sorted(os.listdir(directory))
    # Recycling every 5 requests, uWSGI once closed a scrape's connection without an answer
    # (1 run in ~10; noted, not this test's subject): tolerated once or twice, never more.
    assert len(failures) <= 2 and all("RemoteDisconnected" in f for f in failures), failures
    counted = sum(v for k, v in final.items() if k.startswith(COUNT))
    # exact: neither lost nor doubled (the server's readiness probe is in the baseline, and
    # /metrics requests are not counted)
    assert counted == baseline + sent, (counted, baseline, sent)
    assert all(b >= a for a, b in itertools.pairwise(scrapes)), "a count went back"
    assert len(scrapes) >= 20  # the scrapes really raced the recycling
    assert final["postfork_workers_started_total{}"] >= sent / 5 - 2  # ~60 lives recycled
    db_files = [name for name in files if name.endswith(".db")]
    # at most 3 files (counter, histogram, livesum gauge) per live process (2 workers and the
    # master, which connected once while loading the app) plus the archives; without
    # compaction: 3 per life, ~180
    assert len(db_files) <= 3 * (2 + 1) + 2, files
    assert {"counter_archive.db", "histogram_archive.db"} <= set(files)
