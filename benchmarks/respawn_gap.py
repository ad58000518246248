"""uWSGI's respawn gap with and without postfork's accelerator, gunicorn as the anchor.

1. Gap: one worker, max-requests = 5, 200 sequential requests. Every sixth request waits for
   the replacement worker, so (its latency - the steady median) = worker exit + master wake-up +
   fork + post-fork warm-up.
2. Closed loop: 4 processes, the shipped recycling configuration (max-requests = 100 plus the
   per-worker delta/jitter), wrk with 8 connections for 15 s; every variant twice, interleaved,
   against the same service without recycling, and against uWSGI's own recycling defaults
   (the recycling storm). wrk's req/s and max are used, not its percentiles (wrk 4.1 pads
   its histogram).

    .venv/bin/python benchmarks/respawn_gap.py [--database-url URL] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from postfork import DatabaseURL
from postfork._database import selected_database
from postfork._serve import ServeOptions
from postfork.bench.runner import ServiceProcess, free_port, get
from postfork.service.schema import seed_database

OFF = {"POSTFORK_ACCELERATE_RESPAWNS": "false"}
GAP_VARIANTS = [
    ("uwsgi, accelerator on", "uwsgi", {}),
    ("uwsgi, accelerator off", "uwsgi", OFF),
    ("gunicorn (anchor)", "gunicorn", {}),
]
# uWSGI's own defaults: workers younger than 10 s are not recycled (so workers that started
# together recycle together, every 10 s), no per-worker delta, the 2 s fork-bomb sleep.
UWSGI_DEFAULTS = (
    "--min-worker-lifetime",
    "10",
    "--max-requests-delta",
    "0",
    "--forkbomb-delay",
    "2",
)
LOOP_VARIANTS = [
    ("uwsgi, no recycling", "uwsgi", 0, {}, ()),
    ("uwsgi, max-requests 100, accelerator on", "uwsgi", 100, {}, ()),
    ("uwsgi, max-requests 100, accelerator off", "uwsgi", 100, OFF, ()),
    ("uwsgi, uWSGI's recycling defaults, accelerator off", "uwsgi", 100, OFF, UWSGI_DEFAULTS),
    ("uwsgi, uWSGI's recycling defaults, accelerator on", "uwsgi", 100, {}, UWSGI_DEFAULTS),
    ("gunicorn, no recycling", "gunicorn", 0, {}, ()),
    ("gunicorn, max_requests 100", "gunicorn", 100, {}, ()),
]


def no_spread(server: str) -> tuple[str, ...]:
    if server == "uwsgi":
        return ("--max-requests-delta", "0")
    return ("--max-requests-jitter", "0")


WARM_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO postfork.install: "
    r"pid (\d+): warm in ([\d.]+) ms",
    re.MULTILINE,
)


def post_fork_times(log: str) -> dict[int, float]:
    """When each worker's post-fork hook started: its "warm in X ms" line's time minus X."""
    times = {}
    for stamp, pid, warm_ms in WARM_LINE.findall(log):
        logged = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        times[int(pid)] = logged - float(warm_ms) / 1e3
    return times


def measure_gap(url: DatabaseURL, server: str, env: dict[str, str]) -> dict[str, float]:
    options = ServeOptions(
        server=server,
        processes=1,
        max_requests=5,
        bind=f"127.0.0.1:{free_port()}",
        extra=no_spread(server),
    )
    received: list[float] = []  # wall-clock time each response arrived
    with ServiceProcess(url, options, env=env) as service:
        responses = []
        for i in range(200):
            responses.append(get(service.port, f"/v1/accounts/{i % 50 + 1}/summary"))
            received.append(time.time())
        forked = post_fork_times(service.log())
    assert all(r.status == 200 for r in responses)
    steady = statistics.median(r.elapsed * 1e3 for r in responses if r.worker[1] > 1)
    costs = sorted(r.elapsed * 1e3 - steady for r in responses[1:] if r.worker[1] == 1)
    # the gap: the old worker's last response (as received) -> the new worker's post-fork hook
    gaps = sorted(
        (forked[r.worker[0]] - received[i - 1]) * 1e3
        for i, r in enumerate(responses)
        if i and r.worker[1] == 1 and r.worker[0] in forked
    )
    row = {
        "respawns": len(costs),
        "steady_median_ms": steady,
        "first_after_respawn_extra_p50_ms": statistics.median(costs),
        "first_after_respawn_extra_max_ms": costs[-1],
    }
    if gaps:  # gunicorn without preload_app logs no post-fork warm line
        row |= {
            "gap_p50_ms": statistics.median(gaps),
            "gap_p99_ms": gaps[round(0.99 * (len(gaps) - 1))],
            "gap_max_ms": gaps[-1],
        }
    return row


def measure_loop(
    url: DatabaseURL, server: str, max_requests: int, env: dict[str, str], extra: tuple[str, ...]
) -> dict[str, float]:
    options = ServeOptions(
        server=server,
        processes=4,
        max_requests=max_requests,
        bind=f"127.0.0.1:{free_port()}",
        extra=extra,
    )
    with ServiceProcess(url, options, env=env) as service:
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                "-c8",
                "-d15s",
                f"http://127.0.0.1:{service.port}/v1/accounts/7/summary",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    assert latency is not None, out
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[latency.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "max_ms": float(latency.group(1)) * scale,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--json")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed for the closed-loop part: apt-get install -y wrk")
    report: dict[str, Any] = {"gap": {}, "loop": {}}
    with selected_database(args.database_url) as (url, origin):
        seed_database(url)
        print(f"database {url.redacted()} [{origin}]")
        for label, server, env in GAP_VARIANTS:
            report["gap"][label] = row = measure_gap(url, server, env)
            gap = (
                f"; gap p50 {row['gap_p50_ms']:.1f} ms, p99 {row['gap_p99_ms']:.1f} ms, "
                f"max {row['gap_max_ms']:.1f} ms"
                if "gap_p50_ms" in row
                else ""
            )
            print(
                f"gap  {label:<32} first request after respawn "
                f"+{row['first_after_respawn_extra_p50_ms']:.1f} ms p50, "
                f"+{row['first_after_respawn_extra_max_ms']:.1f} ms max{gap} "
                f"({row['respawns']} respawns)"
            )
        for _round in range(2):
            for label, server, max_requests, env, extra in LOOP_VARIANTS:
                row = measure_loop(url, server, max_requests, env, extra)
                report["loop"].setdefault(label, []).append(row)
                print(f"loop {label:<52} {row['rps']:8.1f} req/s  max {row['max_ms']:7.1f} ms")
    summary = {
        label: {
            "rps": statistics.mean(r["rps"] for r in rows),
            "max_ms": max(r["max_ms"] for r in rows),
            "non_2xx": sum(r["non_2xx"] for r in rows),
        }
        for label, rows in report["loop"].items()
    }
    report["loop_summary"] = summary
    for server, base in (("uwsgi", "uwsgi, no recycling"), ("gunicorn", "gunicorn, no recycling")):
        for label, row in summary.items():
            if label.startswith(server) and label != base:
                print(
                    f"{label:<48} throughput {row['rps'] / summary[base]['rps']:.2f}x, "
                    f"max latency {row['max_ms'] / summary[base]['max_ms']:.1f}x of no recycling"
                )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
