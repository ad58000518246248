"""Memory of a pre-fork server: the master's and each worker's RSS, PSS and private memory, at
several process counts, with and without ``gc.freeze()`` at fork.

    .venv/bin/python benchmarks/worker_memory.py --processes 4 32 \
        --json benchmarks/results/worker_memory.json

For each process count and each setting of ``POSTFORK_GC_FREEZE``: the reference service under
uWSGI (``warm`` mode, app preloaded in the master, no recycling), then for each of
``--requests-per-worker`` (default 100: a worker's whole life at the story's
``max-requests = 100``; and 1,000: a long-lived worker, whose gc has by then run full
collections, which visit and so write to every tracked object's header: the copy-on-write the
freeze prevents) that many requests per worker on average (closed loop, 8 connections), then
``/proc/PID/smaps_rollup`` of the master and every worker. PSS splits each shared page between
the processes sharing it, so the sum of PSS is the server's real footprint; private memory is
what each worker alone costs (what one more worker adds). Starts its own private MariaDB; stops
everything it started.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from postfork_tools.bench import loadgen  # noqa: E402
from postfork_tools.embedded import EmbeddedMariaDB  # noqa: E402
from postfork_tools.serve.command import ServeOptions  # noqa: E402
from postfork_tools.serve.runner import ServiceProcess, free_port  # noqa: E402
from postfork_tools.service.schema import seed_database  # noqa: E402

FIELDS = ("Rss", "Pss", "Private_Clean", "Private_Dirty", "Shared_Clean", "Shared_Dirty")


def smaps(pid: int) -> dict[str, float]:
    """The rollup of a process's mappings, in MiB."""
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            name, _, rest = line.partition(":")
            if name in FIELDS:
                values[name] = int(rest.split()[0]) / 1024
    values["Private"] = values["Private_Clean"] + values["Private_Dirty"]
    return values


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(child) for child in handle.read().split()]


def measure(
    db: EmbeddedMariaDB, processes: int, freeze: bool, lives: list[int]
) -> list[dict[str, Any]]:
    options = ServeOptions(processes=processes, max_requests=0, bind=f"127.0.0.1:{free_port()}")
    env = {"POSTFORK_GC_FREEZE": "true" if freeze else "false"}
    rows, sent = [], 0
    with ServiceProcess(db.url, options, env=env) as service:
        assert service.process is not None
        master = service.process.pid
        time.sleep(1.0 + processes * 0.05)  # every worker warm
        for per_worker in sorted(lives):
            spec = loadgen.LoadSpec(
                port=service.port,
                duration=600,
                connections=8,
                max_requests=processes * per_worker - sent,
            )
            result = loadgen.run(spec)
            sent = processes * per_worker
            errors = sum(1 for status in result.samples.status if status != 200)
            workers = children(master)
            rows.append(summary(processes, freeze, per_worker, errors, smaps(master), workers))
    return rows


def summary(
    processes: int,
    freeze: bool,
    per_worker: int,
    errors: int,
    master_memory: dict[str, float],
    workers: list[int],
) -> dict[str, Any]:
    worker_memory = [smaps(pid) for pid in workers]
    per_worker_median = {
        name: round(statistics.median(m[name] for m in worker_memory), 2)
        for name in ("Rss", "Pss", "Private", "Private_Dirty")
    }
    total_pss = master_memory["Pss"] + sum(m["Pss"] for m in worker_memory)
    return {
        "processes": processes,
        "gc_freeze": freeze,
        "requests_per_worker": per_worker,
        "errors": errors,
        "workers_seen": len(workers),
        "master": {name: round(master_memory[name], 2) for name in ("Rss", "Pss", "Private")},
        "worker_median": per_worker_median,
        "total_pss_mib": round(total_pss, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[4, 32])
    parser.add_argument("--requests-per-worker", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with EmbeddedMariaDB() as db:
        seed_database(db.url)
        for processes in args.processes:
            for freeze in (False, True):
                for row in measure(db, processes, freeze, args.requests_per_worker):
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print(f"{'processes':>9} {'gc.freeze':>9} {'requests':>8} {'master RSS':>10} "
          f"{'worker RSS':>10} {'PSS':>6} {'private':>8} {'total PSS':>9}"
          "  (MiB; worker: median; requests per worker)")  # fmt: skip
    for row in rows:
        worker = row["worker_median"]
        print(
            f"{row['processes']:>9} {'on' if row['gc_freeze'] else 'off':>9} "
            f"{row['requests_per_worker']:>8} "
            f"{row['master']['Rss']:>10.1f} {worker['Rss']:>10.1f} {worker['Pss']:>6.1f} "
            f"{worker['Private']:>8.1f} {row['total_pss_mib']:>9.1f}"
        )
    if args.json:
        report = {"command": "python " + " ".join(sys.argv), "rows": rows}
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
