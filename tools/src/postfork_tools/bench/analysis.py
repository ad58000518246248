"""From one scenario's samples to the figures the bench reports: percentiles, the slow share,
respawns, connects paid on the request path, each new worker's first request, and why the slow
requests were slow.

Pure functions over recorded data (no I/O), so the definitions below are all there is:

- latency: open loop, from each request's *due* time to its answer; closed loop, from sending.
- a worker: a pid seen in ``X-Worker``. Workers are ordered by their first answered request; the
  first ``processes`` are the ones the server started with, every later one is a respawn.
- slow: latency above the scenario's own p50 + 5 ms.
- attribution of a slow request: ``first-request`` (a worker's first request: it may have paid a
  connect or a cold start), ``respawn-wait`` (it spent more than 5 ms outside the application,
  i.e. queued, while a worker was being replaced), ``other``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from postfork.install import WarmReport
from postfork_tools.bench.loadgen import TRANSPORT_ERROR, LoadResult, Samples

SLOW_MARGIN_MS = 5.0
PERCENTILES = (("p50_ms", 50.0), ("p90_ms", 90.0), ("p99_ms", 99.0), ("p999_ms", 99.9))


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (an observed value, never interpolated)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(round(pct / 100.0 * len(ordered), 9)))  # 99.9% of 1000 is 999
    return ordered[rank - 1]


@dataclass
class Workers:
    """Who answered what: each pid's first and last request (indices into samples)."""

    first: dict[int, int] = field(default_factory=dict)
    last: dict[int, int] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)  # pids by when their first request was answered
    by_last: list[int] = field(default_factory=list)  # pids by when their last request was answered

    @classmethod
    def of(cls, samples: Samples) -> Workers:
        """A worker's first and last requests are its lowest and highest request numbers (the
        server's own count, from ``X-Worker``), not the first and last answers to arrive."""
        workers = cls()
        for index in range(len(samples)):
            pid, number = samples.pid[index], samples.number[index]
            if not pid:
                continue
            if pid not in workers.first or number < samples.number[workers.first[pid]]:
                workers.first[pid] = index
            if pid not in workers.last or number > samples.number[workers.last[pid]]:
                workers.last[pid] = index
        workers.order = sorted(workers.first, key=lambda pid: samples.done[workers.first[pid]])
        workers.by_last = sorted(workers.last, key=lambda pid: samples.done[workers.last[pid]])
        return workers

    def born_during_run(self, processes: int) -> list[int]:
        return self.order[processes:]

    def retired(self, processes: int) -> list[int]:
        """Workers that stopped answering and were replaced: all but the ``processes`` whose
        last answer came last."""
        return self.by_last[: max(0, len(self.by_last) - processes)]


def dropped(samples: Samples) -> int:
    """Requests that got no HTTP answer at all (refused, reset, closed unanswered, timed out):
    the errors a server makes when it drops a connection, as opposed to an answer that is not 200
    (see docs/bench.md: uvicorn drops a connection or two each time a worker recycles)."""
    return sum(1 for status in samples.status if status == TRANSPORT_ERROR)


def latencies_ms(samples: Samples) -> list[float]:
    return [(done - due) * 1e3 for done, due in zip(samples.done, samples.due, strict=True)]


def summarize(result: LoadResult, processes: int) -> dict[str, Any]:
    """The per-scenario figures of the JSON report (see docs/bench.md for the schema)."""
    samples = result.samples
    latency = latencies_ms(samples)
    ok = [i for i in range(len(samples)) if samples.status[i] == 200]
    ordered = sorted(latency[i] for i in ok)
    workers = Workers.of(samples)
    firsts = {workers.first[pid] for pid in workers.born_during_run(processes)}
    steady_indices = [i for i in ok if i not in firsts and i not in workers.first.values()]
    steady = [latency[i] for i in steady_indices]
    first_ok = [i for i in firsts if samples.status[i] == 200]
    first_latency = sorted(latency[i] for i in first_ok)
    p50 = percentile(ordered, 50.0)
    threshold = p50 + SLOW_MARGIN_MS
    slow = [i for i in ok if latency[i] > threshold]
    connects = [samples.connect_ms[i] for i in range(len(samples)) if samples.connect_ms[i] > 0]
    steady_p50 = statistics.median(steady) if steady else math.nan
    connect_p50 = statistics.median(connects) if connects else 0.0
    paid = [i for i in ok if connects and latency[i] - steady_p50 >= 0.8 * connect_p50]
    first_p50 = statistics.median(first_latency) if first_latency else math.nan
    figures: dict[str, Any] = {
        "requests": len(samples),
        "errors": len(samples) - len(ok),
        "dropped": dropped(samples),
        "rps": len(samples) / result.elapsed if result.elapsed > 0 else 0.0,
        **{key: percentile(ordered, pct) for key, pct in PERCENTILES},
        "max_ms": ordered[-1] if ordered else math.nan,
        "slow_threshold_ms": threshold,
        "slow_share": len(slow) / len(ok) if ok else 0.0,
        "respawns": len(firsts),
        "connects_on_request_path": len(connects),
        "connect_ms_p50": connect_p50,
        "paid_connect_share": len(paid) / len(ok) if ok else 0.0,
        "steady_p50_ms": steady_p50,
        "first_after_respawn_p50_ms": first_p50,
        "first_after_respawn_max_ms": first_latency[-1] if first_latency else math.nan,
        "first_vs_steady": _ratio_of_medians(first_latency, steady),
        # the same on the app's own time (Server-Timing app): what is left outside it is the
        # server's, the kernel's and the scheduler's
        "first_vs_steady_in_app": _ratio_of_medians(
            [samples.app_ms[i] for i in first_ok], [samples.app_ms[i] for i in steady_indices]
        ),
        "slow_attribution": attribute(samples, latency, slow, workers, processes),
    }
    return figures


def _ratio_of_medians(first: list[float], steady: list[float]) -> float:
    if not first or not steady or statistics.median(steady) <= 0:
        return math.nan
    return statistics.median(first) / statistics.median(steady)


def attribute(
    samples: Samples, latency: list[float], slow: list[int], workers: Workers, processes: int
) -> dict[str, int]:
    firsts = set(workers.first.values())
    windows = respawn_windows(samples, workers, processes)
    counts = {"first-request": 0, "respawn-wait": 0, "other": 0}
    for i in slow:
        outside_app = latency[i] - samples.app_ms[i]
        if i in firsts:
            counts["first-request"] += 1
        elif outside_app > SLOW_MARGIN_MS and _overlaps(samples.due[i], samples.done[i], windows):
            counts["respawn-wait"] += 1
        else:
            counts["other"] += 1
    return counts


def respawn_windows(
    samples: Samples, workers: Workers, processes: int
) -> list[tuple[float, float]]:
    """From each retired worker's last answer to the next new worker's first answer."""
    births = sorted(samples.done[workers.first[pid]] for pid in workers.born_during_run(processes))
    windows = []
    for pid in workers.retired(processes):
        ended = samples.done[workers.last[pid]]
        after = [born for born in births if born > ended]
        windows.append((ended, after[0] if after else ended))
    return windows


def _overlaps(start: float, end: float, windows: list[tuple[float, float]]) -> bool:
    return any(start < w_end and w_start < end for w_start, w_end in windows)


# -- respawn gaps, from the workers' warm-up records ---------------------------------------


@dataclass(frozen=True)
class WorkerStart:
    pid: int
    forked: float  # wall clock: when its post-fork hook began
    ready: float  # wall clock: when it was warm


def worker_starts(reports: Iterable[WarmReport]) -> list[WorkerStart]:
    """Every worker's start, from the :class:`~postfork.install.WarmReport` records the
    service writes (``POSTFORK_EVENT_LOG``); the master's and failed warm-ups are left out."""
    starts = [
        WorkerStart(report.pid, report.started_at, report.ready_at)
        for report in reports
        if report.error is None and report.role != "master"
    ]
    return sorted(starts, key=lambda start: start.forked)


def read_warm_reports(lines: Iterable[str]) -> list[WarmReport]:
    reports = (WarmReport.from_json(line) for line in lines if line.strip())
    return [report for report in reports if report is not None]


@dataclass
class RespawnGaps:
    """Per replaced worker, from its last answer (as the client saw it) to its replacement's
    post-fork hook (``to_fork``: exit, reaping, fork) and to its replacement being warm
    (``to_ready``: plus the connect and warm-up). Ascending, in milliseconds."""

    to_fork: list[float] = field(default_factory=list)
    to_ready: list[float] = field(default_factory=list)


def respawn_gaps(
    result: LoadResult,
    processes: int,
    reports: Iterable[WarmReport],
    *,
    max_requests: int = 0,
) -> RespawnGaps:
    """Retired workers and new workers paired in time order (the n-th worker to go with the
    first start after it); needs a connect mode that reports its warm-up (warm, postfork).

    With ``max_requests`` (every worker recycles after exactly that many), a worker retired when
    it answered its max_requests-th request; otherwise, when it stopped answering before the
    last ``processes`` did (which, at a low rate over many workers, also counts a live worker
    that just had no request lately)."""
    samples = result.samples
    workers = Workers.of(samples)
    if max_requests:
        gone = [pid for pid, i in workers.last.items() if samples.number[i] == max_requests]
    else:
        gone = workers.retired(processes)
    retired = sorted(samples.done[workers.last[pid]] + result.wall_offset for pid in gone)
    starts = worker_starts(reports)
    gaps = RespawnGaps()
    cursor = 0
    for ended in retired:
        while cursor < len(starts) and starts[cursor].forked < ended - 0.002:  # clock skew
            cursor += 1
        if cursor == len(starts):
            break
        gaps.to_fork.append(max(0.0, (starts[cursor].forked - ended) * 1e3))
        gaps.to_ready.append(max(0.0, (starts[cursor].ready - ended) * 1e3))
        cursor += 1
    gaps.to_fork.sort()
    gaps.to_ready.sort()
    return gaps
