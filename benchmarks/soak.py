"""Soak: the reference service under uWSGI with recycling, for a long run of requests.

The shipped configuration (4 processes, max-requests = 100 plus the per-worker delta) serves
closed-loop load in segments. Between segments the script samples:
- the uWSGI master's and each live worker's open file descriptors and RSS (from /proc);
- the server's Threads_connected (sessions) and Aborted_clients.

The figures must stay flat, and the run must end with zero errors.

    .venv/bin/python benchmarks/soak.py [--requests 200000] [--segments 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from postfork.cli.database import selected_database
from postfork.drivers import connect
from postfork.url import DatabaseURL
from postfork_tools.bench import loadgen
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import ServiceProcess, free_port
from postfork_tools.service.schema import seed_database


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return -1.0


def server_status(url: DatabaseURL) -> dict[str, int]:
    conn = connect(url, timeout=5, autocommit=True)
    try:
        cursor = conn.cursor()
        cursor.execute(
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('Threads_connected', 'Aborted_clients')"
        )
        status = {name: int(value) for name, value in cursor.fetchall()}
    finally:
        conn.close()
    status["Threads_connected"] -= 1  # not counting this session
    return status


def sample(master: int, url: DatabaseURL) -> dict[str, Any]:
    workers = children(master)
    return {
        "master_fds": fds(master),
        "master_rss_mb": rss_mb(master),
        "worker_fds": sorted(fds(pid) for pid in workers),
        "worker_rss_mb_max": max((rss_mb(pid) for pid in workers), default=-1.0),
        **server_status(url),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--segments", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--database-url")
    parser.add_argument("--json")
    args = parser.parse_args()
    per_segment = args.requests // args.segments
    report: dict[str, Any] = {"requests_asked": args.requests, "segments": []}
    with selected_database(args.database_url) as (url, origin):
        seed_database(url)
        print(f"database {url.redacted()} [{origin}]")
        options = ServeOptions(processes=4, max_requests=100, bind=f"127.0.0.1:{free_port()}")
        with ServiceProcess(url, options) as service:
            assert service.process is not None
            master = service.process.pid
            report["before"] = sample(master, url)
            print(f"before: {report['before']}")
            for number in range(1, args.segments + 1):
                spec = loadgen.LoadSpec(
                    port=service.port,
                    duration=600,
                    connections=args.connections,
                    max_requests=per_segment,
                )
                result = loadgen.run(spec)
                samples = result.samples
                errors = sum(1 for status in samples.status if status != 200)
                row = {
                    "segment": number,
                    "requests": len(samples),
                    "errors": errors,
                    "rps": len(samples) / result.elapsed,
                    "p50_ms": statistics.median(
                        (d - s) * 1e3 for d, s in zip(samples.done, samples.sent, strict=True)
                    ),
                    "workers_seen": len(set(samples.pid)),
                    **sample(master, url),
                }
                report["segments"].append(row)
                print(json.dumps(row))
    rows = report["segments"]
    report["total_requests"] = sum(r["requests"] for r in rows)
    report["total_errors"] = sum(r["errors"] for r in rows)
    print(
        f"total {report['total_requests']} requests, {report['total_errors']} errors; "
        f"master fds {rows[0]['master_fds']} -> {rows[-1]['master_fds']}, "
        f"worker fds {rows[0]['worker_fds']} -> {rows[-1]['worker_fds']}, "
        f"Threads_connected {rows[0]['Threads_connected']} -> {rows[-1]['Threads_connected']}, "
        f"worker RSS max {rows[0]['worker_rss_mb_max']:.1f} -> "
        f"{rows[-1]['worker_rss_mb_max']:.1f} MB, master RSS {rows[0]['master_rss_mb']:.1f} -> "
        f"{rows[-1]['master_rss_mb']:.1f} MB, Aborted_clients "
        f"{report['before']['Aborted_clients']} -> {rows[-1]['Aborted_clients']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    sys.exit(1 if report["total_errors"] else 0)


if __name__ == "__main__":
    main()
