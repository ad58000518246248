"""Django under an ASGI server, stock backend against postfork.django, side by side: the app of
tests/e2e/apps/djangoapp (sync and async views, reads and writes) under ``uvicorn --workers 2``
(and, with --server, gunicorn's ASGI workers or hypercorn), recycling every --max-requests,
REQUESTS requests from 4 concurrent clients.

Per variant: answers by status, server sessions sampled during the traffic (max) and left open
10 s after it, connects per request (the server's ``Connections`` counter), statements per
request (``Questions``), and a new worker's first request against the steady median (client
side, by ``X-Worker`` request number).

    .venv/bin/python benchmarks/django_asgi.py [--server uvicorn] [--json PATH]

The database: DATABASE_URL, else the local server (root, no password); it uses a database of its
own, ``postfork_django_asgi``, made and migrated here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from postfork import parse_url
from postfork.drivers import connect
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import ServiceProcess, free_port, from_clients, get

ROOT = Path(__file__).resolve().parents[1]
APP = "tests.e2e.apps.djangoapp.asgi:application"
DATABASE = "postfork_django_asgi"
REQUESTS, CLIENTS = 300, 4
VARIANTS = {
    "stock, CONN_MAX_AGE=0": {
        "DJANGO_ENGINE": "django.db.backends.mysql",
        "DJANGO_CONN_MAX_AGE": "0",
    },
    "stock, CONN_MAX_AGE=60": {
        "DJANGO_ENGINE": "django.db.backends.mysql",
        "DJANGO_CONN_MAX_AGE": "60",
    },
    "postfork.django, CONN_MAX_AGE=0": {"DJANGO_CONN_MAX_AGE": "0"},
    "postfork.django, CONN_MAX_AGE=60": {"DJANGO_CONN_MAX_AGE": "60"},
    "postfork.django, CONN_MAX_AGE=None": {"DJANGO_CONN_MAX_AGE": "persistent"},
    "postfork.django, warm-up path": {"DJANGO_WARMUP_PATH": "/notes/1"},
}


def admin(url: Any, sql: str) -> list[tuple[Any, ...]]:
    conn = connect(url, autocommit=True)
    try:
        cursor = conn.cursor()
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        conn.close()


class Monitor:
    """One connection of its own for the counters and the session samples (so it adds no
    connect; its statements are counted and taken off)."""

    def __init__(self, url: Any) -> None:
        self.conn = connect(url, autocommit=True)
        self.statements = 0
        self.lock = threading.Lock()

    def query(self, sql: str) -> int:
        with self.lock:
            cursor = self.conn.cursor()
            cursor.execute(sql)
            self.statements += 1
            return int(cursor.fetchall()[0][-1])

    def status(self, name: str) -> int:
        return self.query(f"SHOW GLOBAL STATUS LIKE '{name}'")

    def sessions(self) -> int:
        return self.query(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
            f"WHERE DB = '{DATABASE}' AND ID <> CONNECTION_ID()"
        )


def environment(url: Any, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": url.render_secret(),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.pathsep.join(sys.path),
        "DJANGO_SETTINGS_MODULE": "tests.e2e.apps.djangoapp.settings",
        **extra,
    }


def migrate(url: Any) -> None:
    admin(dataclasses.replace(url, database=None), f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        env={**os.environ, **environment(url)},
        cwd=ROOT,
        check=True,
    )
    admin(url, "INSERT INTO postfork_e2e_notes (id, body, hits) VALUES (1, 'one', 0) "
               "ON DUPLICATE KEY UPDATE body = body")  # fmt: skip


def traffic(port: int) -> list[tuple[int, int, float, bool, float]]:
    """(status, worker request number, ms, paid a connect, ms in the app) per request; a
    connection reset at recycling counts as status 0."""
    paths = ["/notes/1", "/async/notes/1", "/notes?body=s", "/async/notes?body=a"]

    def client(offset: int) -> Iterator[tuple[int, int, float, bool, float]]:
        for number in range(REQUESTS // CLIENTS):
            path = paths[(offset + number) % len(paths)]
            method = "POST" if "body=" in path else "GET"
            started = time.perf_counter()
            try:
                answer = get(port, path, method=method, timeout=15)
            except OSError:
                yield (0, 0, 0.0, False, 0.0)
                continue
            ms = (time.perf_counter() - started) * 1000
            timing = answer.timing
            yield (answer.status, answer.worker[1], ms, timing["db-connect"] > 0, timing["app"])

    return from_clients(CLIENTS, client)


def measure(url: Any, server: str, max_requests: int, env: dict[str, str]) -> dict[str, Any]:
    options = ServeOptions(
        server=server,
        processes=2,
        max_requests=max_requests,
        bind=f"127.0.0.1:{free_port()}",
        app=APP,
        extra=("--max-requests-jitter", "0") if server.startswith("gunicorn") else (),
    )
    service = ServiceProcess(url, options, env=environment(url, **env), ready_path="/notes/1")
    counts: list[int] = []
    stop = threading.Event()
    monitor = Monitor(url)

    def sample() -> None:
        while not stop.wait(0.05):
            counts.append(monitor.sessions())

    with service:
        connections, questions = monitor.status("Connections"), monitor.status("Questions")
        own = monitor.statements
        sampler = threading.Thread(target=sample)
        sampler.start()
        rows = traffic(service.port)
        stop.set()
        sampler.join()
        served = len(rows)
        connects = monitor.status("Connections") - connections
        statements = monitor.status("Questions") - questions - (monitor.statements - own)
        time.sleep(10)
        left_open = monitor.sessions()
    ok = [row for row in rows if row[0] == 200]
    firsts, steady = [r for r in ok if r[1] == 1], [r for r in ok if r[1] > 1]
    return {
        "answers": dict(Counter(row[0] for row in rows)),
        "connects_on_request_path": sum(row[3] for row in rows),  # seen by postfork only
        "sessions_max": max(counts, default=0),
        "sessions_left_10s_after": left_open,
        "connects_per_request": round(connects / served, 3),  # warm-ups included
        "statements_per_request": round(statements / served, 2),
        # the client's time includes any wait for a respawning worker; the app's does not
        **_ratio("client", [r[2] for r in firsts], [r[2] for r in steady]),
        **_ratio("app", [r[4] for r in firsts], [r[4] for r in steady]),
        "new_workers": len(firsts),
    }


def _ratio(name: str, firsts: list[float], steady: list[float]) -> dict[str, float | None]:
    first = statistics.median(firsts) if firsts else None
    usual = statistics.median(steady)
    return {
        f"{name}_first_request_ms_p50": None if first is None else round(first, 2),
        f"{name}_steady_ms_p50": round(usual, 2),
        f"{name}_first_vs_steady": None if first is None else round(first / usual, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="uvicorn")
    parser.add_argument("--max-requests", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    base = parse_url(os.environ.get("DATABASE_URL") or "mysql://root@127.0.0.1:3306/test")
    url = dataclasses.replace(base, database=DATABASE)
    migrate(url)
    results = {}
    for name, env in VARIANTS.items():
        results[name] = measure(url, args.server, args.max_requests, env)
        print(f"{name:38} {json.dumps(results[name])}", flush=True)
    if args.json:
        report = {
            "command": " ".join(sys.argv),
            "server": args.server,
            "max_requests": args.max_requests,
            "requests": REQUESTS,
            "clients": CLIENTS,
            "results": results,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
