"""MariaDB's thread pool against one thread per connection, with hundreds of connections.

    .venv/bin/python benchmarks/thread_pool.py --json benchmarks/results/thread_pool.json

Two private MariaDB servers, seeded alike, differing in one setting: ``thread_handling =
pool-of-threads`` and the default ``one-thread-per-connection`` (both ``max_connections =
1000``). Against each in turn (rounds interleaved, A B A B, so the shared machine's noise falls
on both): several uWSGI servers of the reference service at once (``--servers`` x
``--processes`` workers, each holding its own warm connection: hundreds of server sessions),
each driven by a closed loop of ``--connections`` clients on the summary endpoint. Per mode:
throughput, p50/p99/p99.9, errors, the sessions the server held and its peak of running
threads.

Starts its own servers; stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from postfork_tools.bench.analysis import latencies_ms, percentile  # noqa: E402
from postfork_tools.bench.loadgen import LoadResult, LoadSpec, run  # noqa: E402
from postfork_tools.embedded import EmbeddedMariaDB  # noqa: E402
from postfork_tools.serve.command import ServeOptions  # noqa: E402
from postfork_tools.serve.runner import ServiceProcess, free_port, get  # noqa: E402
from postfork_tools.service.schema import SeedPlan, seed_database  # noqa: E402

PLAN = SeedPlan(accounts=300, orders_per_account=50, seed=5)
MODES = {
    "pool-of-threads": ["--thread-handling=pool-of-threads"],
    "one-thread-per-connection": ["--thread-handling=one-thread-per-connection"],
}


def status(server: EmbeddedMariaDB, name: str) -> int:
    rows = server.execute(f"SHOW GLOBAL STATUS LIKE '{name}'")
    return int(rows[0][1])


def sample_running(server: EmbeddedMariaDB, stop: threading.Event, peaks: list[int]) -> None:
    while not stop.wait(0.1):
        try:
            peaks.append(status(server, "Threads_running"))
        except Exception:  # the sampler must not end the run; a missed sample is no figure
            continue


def one_run(server: EmbeddedMariaDB, args: argparse.Namespace) -> dict[str, Any]:
    services = []
    try:
        for _ in range(args.servers):
            port = free_port()
            options = ServeOptions(
                processes=args.processes, max_requests=0, bind=f"127.0.0.1:{port}"
            )
            env = {"POSTFORK_ACCESS_LOG": "off", "POSTFORK_METRICS": "off"}
            services.append(ServiceProcess(server.url, options, env=env).start(timeout=180))
        for service in services:
            for _ in range(args.processes):
                get(service.port, "/v1/accounts/1/summary")
        sessions = status(server, "Threads_connected")
        results: list[LoadResult] = []
        stop, peaks = threading.Event(), []
        sampler = threading.Thread(target=sample_running, args=(server, stop, peaks))
        sampler.start()

        def drive(port: int) -> None:
            spec = LoadSpec(
                port=port, duration=args.seconds, connections=args.connections, accounts=300
            )
            results.append(run(spec))

        drivers = [threading.Thread(target=drive, args=(s.port,)) for s in services]
        for driver in drivers:
            driver.start()
        for driver in drivers:
            driver.join()
        stop.set()
        sampler.join()
    finally:
        for service in services:
            service.stop()
    latency = sorted(
        value
        for result in results
        for value, code in zip(latencies_ms(result.samples), result.samples.status, strict=True)
        if code == 200
    )
    requests = sum(len(result.samples) for result in results)
    elapsed = max(result.elapsed for result in results)
    return {
        "sessions": sessions,
        "threads_running_peak": max(peaks, default=0),
        "requests": requests,
        "errors": requests - len(latency),
        "rps": requests / elapsed,
        "p50_ms": percentile(latency, 50),
        "p99_ms": percentile(latency, 99),
        "p999_ms": percentile(latency, 99.9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=3, help="uWSGI servers at once")
    parser.add_argument("--processes", type=int, default=64, help="workers per uWSGI server")
    parser.add_argument("--connections", type=int, default=64, help="clients per uWSGI server")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    servers = {
        mode: EmbeddedMariaDB(server_args=["--max-connections=1000", *extra])
        for mode, extra in MODES.items()
    }
    try:
        for server in servers.values():
            server.start()
            seed_database(server.url, PLAN)
        for number in range(args.rounds):
            for mode, server in servers.items():
                figures = one_run(server, args)
                runs[mode].append(figures)
                print(f"round {number + 1} {mode}: {figures}", file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.stop()
    summary = {
        mode: {
            key: statistics.median(run[key] for run in mode_runs)
            for key in ("sessions", "threads_running_peak", "rps", "p50_ms", "p99_ms", "p999_ms")
        }
        | {"errors": sum(run["errors"] for run in mode_runs)}
        for mode, mode_runs in runs.items()
    }
    pool, per = summary["pool-of-threads"], summary["one-thread-per-connection"]
    summary["ratios_pool_vs_per_connection"] = {
        "rps": pool["rps"] / per["rps"],
        "p50": pool["p50_ms"] / per["p50_ms"],
        "p99": pool["p99_ms"] / per["p99_ms"],
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        document = {
            "command": "benchmarks/thread_pool.py " + " ".join(sys.argv[1:]),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "shape": vars(args),
            "summary": summary,
            "runs": runs,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
