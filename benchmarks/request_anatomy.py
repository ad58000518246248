"""Where a steady request's time goes: the bench's no-recycle p50, taken apart.

    .venv/bin/python benchmarks/request_anatomy.py --json benchmarks/results/request_anatomy.json

Everything in one run, on one private MariaDB behind the bench's 1 ms delay proxy:

1. End to end, the way ``postfork bench`` measures it: the reference service under uWSGI
   (4 processes, warm, no recycling), an open loop at 200 req/s on the summary endpoint, and the
   same on ``/healthz`` (the same server, middleware and JSON, no database), and the same open
   loop against the generator's null server (an answer written at once: the generator's own
   share). Medians of the latency and of the app's ``Server-Timing``.
2. In process, no server and no network between the pieces, medians over many iterations:
   a ``SELECT 1`` round trip direct and through the proxy; the summary query direct, and its
   time inside the server (``SHOW PROFILES``); ``summarize()`` and ``json.dumps`` of its result;
   the whole service (middleware, pool, query, summary, JSON) called as a WSGI app on a direct
   connection, and that same call under cProfile to rank what is ours.

Starts its own private MariaDB and proxy; stops everything it started.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from postfork.drivers import connect  # noqa: E402
from postfork.url import DatabaseURL  # noqa: E402
from postfork_tools.bench import loadgen  # noqa: E402
from postfork_tools.bench.analysis import latencies_ms  # noqa: E402
from postfork_tools.bench.delay_proxy import ProxyProcess, proxied, proxy_target  # noqa: E402
from postfork_tools.embedded import EmbeddedMariaDB  # noqa: E402
from postfork_tools.serve.command import ServeOptions  # noqa: E402
from postfork_tools.serve.runner import ServiceProcess, free_port  # noqa: E402
from postfork_tools.service.app import SUMMARY_SQL  # noqa: E402
from postfork_tools.service.rows import text_datetimes  # noqa: E402
from postfork_tools.service.schema import seed_database  # noqa: E402
from postfork_tools.service.summary import summarize  # noqa: E402

ACCOUNT = 7


def median_us(action: Callable[[], object], iterations: int) -> float:
    timings = []
    for _ in range(iterations):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1e6


def open_loop(port: int, rate: float, duration: float, path: str = "") -> dict[str, Any]:
    result = loadgen.run(loadgen.LoadSpec(port=port, duration=duration, rate=rate, path=path))
    samples = result.samples
    ok = [i for i in range(len(samples)) if samples.status[i] == 200]
    latency = latencies_ms(samples)
    return {
        "requests": len(samples),
        "errors": len(samples) - len(ok),
        "p50_ms": statistics.median(latency[i] for i in ok),
        "app_p50_ms": statistics.median(samples.app_ms[i] for i in ok),
    }


def null_server() -> tuple[subprocess.Popen[str], int]:
    server = subprocess.Popen(
        [sys.executable, "-m", "postfork_tools.bench.loadgen", "--null-server"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    return server, int(server.stdout.readline().split()[1])


def end_to_end(
    through: DatabaseURL, rate: float, duration: float, processes: int
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    server, port = null_server()
    try:
        figures["generator (null server)"] = open_loop(port, rate, duration)
    finally:
        server.kill()
        server.wait()
    options = ServeOptions(processes=processes, max_requests=0, bind=f"127.0.0.1:{free_port()}")
    with ServiceProcess(through, options) as service:
        time.sleep(1.0)
        open_loop(service.port, rate, 2.0)  # warms the proxy, the buffer pool, the CPUs
        figures["uWSGI /healthz (no database)"] = open_loop(
            service.port, rate, duration, "/healthz"
        )
        figures["uWSGI summary (the bench's request)"] = open_loop(service.port, rate, duration)
    return figures


def in_process(direct: DatabaseURL, through: DatabaseURL, iterations: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    conn = connect(direct)
    proxied_conn = connect(through)
    try:
        cursor, proxied_cursor = conn.cursor(), proxied_conn.cursor()

        def select_one(cur: Any) -> Callable[[], object]:
            return lambda: (cur.execute("SELECT 1"), cur.fetchall())

        figures["SELECT 1 round trip, direct (us)"] = median_us(select_one(cursor), iterations)
        figures["SELECT 1 round trip, through the proxy (us)"] = median_us(
            select_one(proxied_cursor), iterations // 4
        )

        def summary_query() -> list[Any]:
            cursor.execute(SUMMARY_SQL, (ACCOUNT,))
            return list(cursor.fetchall())

        figures["summary query + rows, direct, DATETIME parsed (the drivers' default) (us)"] = (
            median_us(summary_query, iterations)
        )
        text_conn = connect(direct, extra={"conv": text_datetimes("mysqlclient")})
        text_cursor = text_conn.cursor()

        def summary_query_text() -> list[Any]:
            text_cursor.execute(SUMMARY_SQL, (ACCOUNT,))
            return list(text_cursor.fetchall())

        figures["summary query + rows, direct, DATETIME as text (the service) (us)"] = median_us(
            summary_query_text, iterations
        )
        text_conn.close()
        rows = summary_query()
        figures["rows per summary"] = len(rows)
        cursor.execute("SET profiling = 1, profiling_history_size = 100")
        for _ in range(100):
            summary_query()
        cursor.execute("SHOW PROFILES")
        durations = [float(row[1]) for row in cursor.fetchall() if "orders" in row[2]]
        figures["summary query inside the server (us)"] = statistics.median(durations) * 1e6
        cursor.execute("SET profiling = 0")
        body = summarize(ACCOUNT, rows)
        figures["summarize() (us)"] = median_us(lambda: summarize(ACCOUNT, rows), iterations)
        figures["json.dumps of the summary (us)"] = median_us(
            lambda: json.dumps(body, separators=(",", ":")).encode(), iterations
        )
    finally:
        conn.close()
        proxied_conn.close()
    return figures


def whole_app(direct: DatabaseURL, iterations: int) -> tuple[float, str]:
    """The service's WSGI app (its middleware, pool, query, summary, JSON) on a direct
    connection, called in process; and the same calls under cProfile, ranked by own time."""
    os.environ.update(
        {
            "DATABASE_URL": direct.render_secret(),
            "POSTFORK_CONNECT": "warm",
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="postfork-anatomy-"),
            "POSTFORK_ACCESS_LOG": "logfmt",
        }
    )
    import logging

    logging.basicConfig(filename=os.devnull, level=logging.INFO, force=True)
    from postfork_tools.service.wsgi import application as app  # built from the environment

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/v1/accounts/{ACCOUNT}/summary",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
    }

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        assert status.startswith("200"), status

    def call() -> None:
        for _chunk in app(dict(environ), start_response):
            pass

    call_us = median_us(call, iterations)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(iterations):
        call()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    return call_us, out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=4000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile", type=Path, help="write the cProfile ranking here")
    args = parser.parse_args()
    with EmbeddedMariaDB() as db:
        seed_database(db.url)
        with ProxyProcess(proxy_target(db.url), 1.0) as proxy:
            through = proxied(db.url, proxy.port)
            report: dict[str, Any] = {"command": "python " + " ".join(sys.argv)}
            report["end_to_end"] = end_to_end(through, args.rate, args.duration, args.processes)
            report["in_process"] = in_process(db.url, through, args.iterations)
            call_us, ranking = whole_app(db.url, args.iterations)
            report["in_process"]["the whole service app, direct connection (us)"] = call_us
    print(json.dumps(report, indent=2))
    if args.profile:
        args.profile.write_text(ranking)
    else:
        print(ranking)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
