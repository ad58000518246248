"""Where a respawn's time goes: from a recycled worker's last answer to its replacement being
warm, in segments, each split into time on a CPU and time waiting for one.

    sudo .venv/bin/python benchmarks/respawn_anatomy.py --processes 32 --seconds 20 \
        --json benchmarks/results/respawn_anatomy-32.json

The reference service under uWSGI (the shipped config: accelerated, staggered), behind the
bench's 1 ms proxy, a closed loop of 8 connections (the bench's storm) while ``perf`` records
the kernel's scheduler and signal events system-wide (needs root and perf). Each respawn is cut
at what the kernel and the service saw:

- old worker: from its last answer (the load generator's clock) to the SIGCHLD its death sends
  the master (its exit hooks, its threads' exits, its address space torn down);
- master: from that SIGCHLD to the fork of the replacement (reap, fork: page tables copied);
- new worker: from the fork to its post-fork hook (the WarmReport's start);
- warm: the connect and the warm-up (the WarmReport).

CLOCK_MONOTONIC throughout (perf ``-k monotonic``; the WarmReport's wall clock converted).
Starts its own MariaDB, proxy and server; stops everything it started.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from postfork_tools.bench import loadgen  # noqa: E402
from postfork_tools.bench.analysis import Workers, read_warm_reports  # noqa: E402
from postfork_tools.bench.delay_proxy import ProxyProcess, proxied, proxy_target  # noqa: E402
from postfork_tools.embedded import EmbeddedMariaDB  # noqa: E402
from postfork_tools.serve.command import ServeOptions  # noqa: E402
from postfork_tools.serve.runner import ServiceProcess, free_port  # noqa: E402
from postfork_tools.service.schema import seed_database  # noqa: E402

EVENTS = (
    "sched:sched_switch",
    "sched:sched_wakeup",
    "sched:sched_wakeup_new",
    "signal:signal_generate",
)
LINE = re.compile(r"^\s*(.*?)\s+(-?\d+)/(-?\d+)\s+(\d+\.\d+):\s+(\S+): (.*)")


def record(processes: int, seconds: float, workdir: str) -> dict[str, Any]:
    events_log = os.path.join(workdir, "events.jsonl")
    perf_data = os.path.join(workdir, "sched.data")
    with EmbeddedMariaDB() as db:
        seed_database(db.url)
        with ProxyProcess(proxy_target(db.url), 1.0) as proxy:
            options = ServeOptions(
                processes=processes, max_requests=100, bind=f"127.0.0.1:{free_port()}"
            )
            env = {"POSTFORK_EVENT_LOG": events_log}
            with ServiceProcess(proxied(db.url, proxy.port), options, env=env) as service:
                assert service.process is not None
                time.sleep(1.0 + processes * 0.03)
                perf = subprocess.Popen(
                    ["perf", "record", "-q", "-k", "monotonic", "-a", "-o", perf_data]
                    + [
                        arg
                        for event in (*EVENTS, "signal:signal_generate")
                        for arg in ("-e", event)
                    ]
                    + ["--", "sleep", str(seconds + 1.0)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(0.5)
                spec = loadgen.LoadSpec(port=service.port, duration=seconds, connections=8)
                result = loadgen.run(spec)
                perf.wait()
                master = service.process.pid
    script = subprocess.run(
        ["perf", "script", "-i", perf_data, "--ns", "-F", "comm,pid,tid,time,event,trace"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    with open(events_log) as handle:
        reports = read_warm_reports(handle)
    wall_minus_mono = time.time() - time.monotonic()
    return {
        "master": master,
        "result": result,
        "reports": reports,
        "offset": wall_minus_mono,
        "script": script,
    }


class Schedule:
    """Each task's switches and wakeups, to split an interval into running / waiting / off."""

    def __init__(self, script: str) -> None:
        self.events: dict[int, list[tuple[float, str, str]]] = collections.defaultdict(list)
        self.sigchld: list[tuple[float, int]] = []  # (time, process that died)
        self.forks: dict[int, list[tuple[float, int]]] = collections.defaultdict(list)
        for line in script.splitlines():
            match = LINE.match(line)
            if not match:
                continue
            pid, when, kind, rest = int(match[2]), float(match[4]), match[5], match[6]
            if kind == "sched:sched_switch":
                out = re.search(r"prev_pid=(\d+) .*prev_state=(\S+) ==> .*next_pid=(\d+)", rest)
                if out:
                    self.events[int(out[1])].append((when, "out", out[2]))
                    self.events[int(out[3])].append((when, "in", ""))
            elif kind in ("sched:sched_wakeup", "sched:sched_wakeup_new"):
                woken = int(re.search(r" pid=(\d+)", rest)[1])  # type: ignore[index]
                self.events[woken].append((when, "wake", ""))
                if kind == "sched:sched_wakeup_new":
                    self.forks[pid].append((when, woken))
            elif kind == "signal:signal_generate" and "sig=17 " in rest:
                self.sigchld.append((when, pid))

    def split(self, task: int, start: float, end: float) -> tuple[float, float]:
        """Milliseconds of [start, end] the task spent on a CPU and waiting for one."""
        running = waiting = 0.0
        state, last = "off", start
        for when, kind, prev_state in self.events[task]:
            if when > end:
                break
            if when >= start:
                span = (when - last) * 1e3
                running += span if state == "run" else 0.0
                waiting += span if state == "wait" else 0.0
                last = when
            if kind == "in":
                state = "run"
            elif kind == "wake" or prev_state.startswith("R"):
                state = "wait"
            else:
                state = "off"
        span = (end - last) * 1e3
        running += span if state == "run" else 0.0
        waiting += span if state == "wait" else 0.0
        return running, waiting


def segments(run: dict[str, Any], processes: int) -> list[dict[str, float]]:
    schedule = Schedule(run["script"])
    result, master, offset = run["result"], run["master"], run["offset"]
    samples = result.samples
    workers = Workers.of(samples)
    reports = {report.pid: report for report in run["reports"]}
    forks = sorted(schedule.forks[master])
    rows = []
    for pid in workers.retired(processes):
        last_answer = samples.done[workers.last[pid]]
        died = [when for when, who in schedule.sigchld if who == pid and when >= last_answer]
        if not died:
            continue
        sigchld = died[0]
        after = [(when, child) for when, child in forks if when >= sigchld]
        if not after or after[0][1] not in reports:
            continue
        forked, child = after[0]
        report = reports[child]
        hook = report.started_at - offset
        old_cpu, old_wait = schedule.split(pid, last_answer, sigchld)
        master_cpu, master_wait = schedule.split(master, sigchld, forked)
        new_cpu, new_wait = schedule.split(child, forked, hook)
        rows.append(
            {
                "old worker: last answer -> SIGCHLD": (sigchld - last_answer) * 1e3,
                "old worker: main thread on a CPU": old_cpu,
                "old worker: main thread waiting for a CPU": old_wait,
                "master: SIGCHLD -> fork": (forked - sigchld) * 1e3,
                "master: on a CPU": master_cpu,
                "master: waiting for a CPU": master_wait,
                "new worker: fork -> post-fork hook": (hook - forked) * 1e3,
                "new worker: on a CPU": new_cpu,
                "new worker: waiting for a CPU": new_wait,
                "warm: connect + warm-up": report.seconds * 1e3,
                "gap to fork (last answer -> fork)": (forked - last_answer) * 1e3,
                "gap to warm (last answer -> warm)": (hook - last_answer) * 1e3
                + report.seconds * 1e3,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postfork-anatomy-") as workdir:
        rows = segments(record(args.processes, args.seconds, workdir), args.processes)
    if not rows:
        sys.exit("no respawn could be followed from answer to warm (is perf working?)")
    summary = {}
    print(f"{len(rows)} respawns, {args.processes} processes (ms)          p50      p90")
    for key in rows[0]:
        values = sorted(row[key] for row in rows)
        p50, p90 = statistics.median(values), values[int(0.9 * (len(values) - 1))]
        summary[key] = {"p50_ms": round(p50, 2), "p90_ms": round(p90, 2)}
        print(f"{key:45s} {p50:8.2f} {p90:8.2f}")
    if args.json:
        report = {"command": "python " + " ".join(sys.argv), "respawns": len(rows)}
        args.json.write_text(json.dumps({**report, "segments": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
