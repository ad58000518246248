"""Reads spread over two replicas against everything on the primary, side by side in one run.

    .venv/bin/python benchmarks/replica_reads.py --json benchmarks/results/replica_reads.json

A private primary and two replicas (tools/replication.py), seeded; the reference service under
uWSGI (4 processes, max-requests 100 unless ``--max-requests`` says otherwise: workers recycle
and warm every member each time), a
closed loop of 8 connections on the summary endpoint. Three scenarios, interleaved over rounds
(A B C A B C ...) so the shared machine's noise falls on all: ``primary`` (DATABASE_URL only),
``one-replica`` (a Cluster routing every read to one replica: routing and checks, nothing
spread) and ``replicas`` (a Cluster spreading reads over both). Per scenario: throughput,
latency percentiles, errors, connects on the request path (Server-Timing), checkouts per
member (/metrics), and the CPU each mariadbd spent per 1000 requests (/proc: where the load
went). All servers share this machine's two cores, so spreading reads cannot add capacity here;
what the run shows is where the work goes and what routing costs a request.

Starts its own servers; stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from postfork_tools.bench.analysis import summarize  # noqa: E402
from postfork_tools.bench.loadgen import LoadSpec, run  # noqa: E402
from postfork_tools.replication import EmbeddedReplicaSet  # noqa: E402
from postfork_tools.serve.command import ServeOptions  # noqa: E402
from postfork_tools.serve.runner import ServiceProcess, free_port, get  # noqa: E402
from postfork_tools.service.schema import SeedPlan, seed_database  # noqa: E402

PROCESSES, CONNECTIONS = 4, 8
PLAN = SeedPlan(accounts=500, orders_per_account=50, seed=11)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def member_checkouts(metrics: str) -> dict[str, float]:
    found = {}
    for line in metrics.splitlines():
        if line.startswith("postfork_member_checkouts_total{"):
            labels, value = line.rsplit(" ", 1)
            found[labels] = float(value)
    return found


def one_run(
    servers: EmbeddedReplicaSet, scenario: str, seconds: float, max_requests: int
) -> dict[str, Any]:
    port = free_port()
    options = ServeOptions(processes=PROCESSES, max_requests=max_requests, bind=f"127.0.0.1:{port}")
    env = {"POSTFORK_ACCESS_LOG": "off"}
    if scenario != "primary":
        replicas = servers.replica_urls[: 1 if scenario == "one-replica" else None]
        env["POSTFORK_REPLICA_URLS"] = ",".join(u.render_secret() for u in replicas)
    with ServiceProcess(servers.primary_url, options, env=env):
        for _ in range(20):  # every worker past its first requests
            get(port, "/v1/accounts/1/summary")
        before = {server.port: cpu_seconds(int(server.pid or 0)) for server in servers.members}
        result = run(LoadSpec(port=port, duration=seconds, connections=CONNECTIONS, accounts=500))
        after = {server.port: cpu_seconds(int(server.pid or 0)) for server in servers.members}
        metrics = get(port, "/metrics").body if scenario != "primary" else ""
    figures = summarize(result, PROCESSES)
    per_thousand = 1000 / max(figures["requests"], 1)
    roles = {servers.primary.port: "primary"} | {
        replica.port: f"replica{index + 1}" for index, replica in enumerate(servers.replicas)
    }
    figures["cpu_ms_per_1000_requests"] = {
        roles[p]: (after[p] - before[p]) * 1e3 * per_thousand for p in before
    }
    figures["member_checkouts"] = member_checkouts(metrics)
    return figures


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def report(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for scenario, runs in results.items():
        cpu = {
            role: statistics.median(run["cpu_ms_per_1000_requests"][role] for run in runs)
            for role in runs[0]["cpu_ms_per_1000_requests"]
        }
        table[scenario] = {
            "rps": median_of(runs, "rps"),
            "p50_ms": median_of(runs, "p50_ms"),
            "p99_ms": median_of(runs, "p99_ms"),
            "p999_ms": median_of(runs, "p999_ms"),
            "errors": sum(run["errors"] for run in runs),
            "connects_on_request_path": sum(run["connects_on_request_path"] for run in runs),
            "respawns": sum(run["respawns"] for run in runs),
            "cpu_ms_per_1000_requests": cpu,
        }
    base = table["primary"]
    table["ratios_vs_primary"] = {
        scenario: {
            "rps": table[scenario]["rps"] / base["rps"],
            "p50": table[scenario]["p50_ms"] / base["p50_ms"],
            "p99": table[scenario]["p99_ms"] / base["p99_ms"],
            "primary_cpu": table[scenario]["cpu_ms_per_1000_requests"]["primary"]
            / base["cpu_ms_per_1000_requests"]["primary"],
        }
        for scenario in ("one-replica", "replicas")
    }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--max-requests", type=int, default=100, help="0: no recycling")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    results: dict[str, list[dict[str, Any]]] = {"primary": [], "one-replica": [], "replicas": []}
    with EmbeddedReplicaSet(2) as servers:
        seed_database(servers.primary_url, PLAN)
        servers.wait_for_replicas(120)
        for number in range(args.rounds):
            for scenario in results:
                figures = one_run(servers, scenario, args.seconds, args.max_requests)
                results[scenario].append(figures)
                print(
                    f"round {number + 1} {scenario:<9} {figures['rps']:.0f} req/s "
                    f"p50 {figures['p50_ms']:.2f} p99 {figures['p99_ms']:.2f} ms, "
                    f"errors {figures['errors']}, cpu/1000 {figures['cpu_ms_per_1000_requests']}",
                    file=sys.stderr,
                    flush=True,
                )
    table = report(results)
    print(json.dumps(table, indent=2))
    if args.json:
        document = {
            "command": "benchmarks/replica_reads.py " + " ".join(sys.argv[1:]),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "processes": PROCESSES,
            "max_requests": args.max_requests,
            "connections": CONNECTIONS,
            "summary": table,
            "runs": {
                scenario: [
                    {k: v for k, v in run.items() if k != "slow_attribution"} for run in runs
                ]
                for scenario, runs in results.items()
            },
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
