"""/metrics under recycling: files in PROMETHEUS_MULTIPROC_DIR and scrape time as respawns add up.

    .venv/bin/python benchmarks/metrics_growth.py --requests 100000 \
        --json benchmarks/results/metrics_growth.json

uWSGI, 2 processes, max-requests = 5, one client sending summary requests back to back (the
measurement of issue 13); at each checkpoint: the files in the directory and the median of 5
scrapes. Starts its own private MariaDB; stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from postfork_tools.embedded import EmbeddedMariaDB  # noqa: E402
from postfork_tools.serve.command import ServeOptions  # noqa: E402
from postfork_tools.serve.runner import ServiceProcess, free_port, get  # noqa: E402
from postfork_tools.service.schema import SeedPlan, seed_database  # noqa: E402


def scrape_ms(port: int) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        assert get(port, "/metrics", timeout=60).status == 200
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    checkpoints = sorted({1000, 2000, 3000, 10000, 30000, args.requests} - {0})
    checkpoints = [c for c in checkpoints if c <= args.requests]
    rows = []
    with EmbeddedMariaDB() as db:
        seed_database(db.url, SeedPlan(accounts=50, orders_per_account=20, seed=7))
        options = ServeOptions(processes=2, max_requests=5, bind=f"127.0.0.1:{free_port()}")
        with ServiceProcess(db.url, options) as service:
            directory = service._env["PROMETHEUS_MULTIPROC_DIR"]
            sent, started = 0, time.monotonic()
            rows.append(
                {
                    "requests": 0,
                    "files": len(os.listdir(directory)),
                    "scrape_ms": round(scrape_ms(service.port), 2),
                }
            )
            for checkpoint in checkpoints:
                while sent < checkpoint:
                    assert get(service.port, f"/v1/accounts/{sent % 50 + 1}/summary").status == 200
                    sent += 1
                row = {
                    "requests": sent,
                    "files": len(os.listdir(directory)),
                    "scrape_ms": round(scrape_ms(service.port), 2),
                    "elapsed_s": round(time.monotonic() - started, 1),
                }
                rows.append(row)
                print(row, flush=True)
    first, last = rows[0]["scrape_ms"], rows[-1]["scrape_ms"]
    report = {"rows": rows, "scrape_ratio_last_vs_first": round(last / first, 2)}
    print(
        f"scrape time after {rows[-1]['requests']} requests / at the start: "
        f"{report['scrape_ratio_last_vs_first']}x (target <= 1.5x)"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
