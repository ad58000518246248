"""The bench's definitions, on recorded samples whose answers are known by construction."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from postfork.install import WarmReport
from postfork_tools.bench import analysis, report
from postfork_tools.bench.loadgen import LoadResult, LoadSpec, Samples, _parse
from postfork_tools.bench.scenarios import RECYCLING_NAMES, select

STEADY_MS = 4.0
CONNECT_MS = 20.0


def _record(
    samples: Samples,
    due: float,
    latency_ms: float,
    pid: int,
    number: int,
    connect_ms: float = 0.0,
    app_ms: float | None = None,
    status: int = 200,
) -> None:
    samples.due.append(due)
    samples.sent.append(due)
    samples.done.append(due + latency_ms / 1e3)
    samples.status.append(status)
    samples.pid.append(pid)
    samples.number.append(number)
    samples.connect_ms.append(connect_ms)
    samples.app_ms.append(latency_ms - 0.5 if app_ms is None else app_ms)


def story_run(workers: int = 2, per_worker: int = 10, generations: int = 5) -> LoadResult:
    """Lazy-mode recycling: each worker answers per_worker requests, then a new pid takes its
    place; every worker's first request pays a connect."""
    samples = Samples()
    clock = 0.0
    for generation in range(generations):
        for slot in range(workers):
            pid = 1000 + generation * workers + slot
            for number in range(1, per_worker + 1):
                first = number == 1
                _record(
                    samples,
                    clock,
                    STEADY_MS + (CONNECT_MS if first else 0.0),
                    pid,
                    number,
                    connect_ms=CONNECT_MS if first else 0.0,
                )
                clock += 0.01
    return LoadResult(LoadSpec(port=1, duration=1, rate=100), samples, 0.0, 1000.0, clock)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 1001)]
    assert analysis.percentile(values, 50.0) == 500.0
    assert analysis.percentile(values, 99.0) == 990.0
    assert analysis.percentile(values, 99.9) == 999.0
    assert analysis.percentile(values, 100.0) == 1000.0
    assert math.isnan(analysis.percentile([], 50.0))


def test_summary_counts_respawns_connects_and_first_requests() -> None:
    run = story_run(workers=2, per_worker=10, generations=5)
    figures = analysis.summarize(run, processes=2)
    assert figures["requests"] == 100
    assert figures["errors"] == 0
    assert figures["respawns"] == 8  # 10 pids, 2 of them the initial workers
    assert figures["connects_on_request_path"] == 10
    assert figures["connect_ms_p50"] == CONNECT_MS
    assert figures["steady_p50_ms"] == pytest.approx(STEADY_MS)
    assert figures["first_after_respawn_p50_ms"] == pytest.approx(STEADY_MS + CONNECT_MS)
    assert figures["first_vs_steady"] == pytest.approx((STEADY_MS + CONNECT_MS) / STEADY_MS)
    in_app = (STEADY_MS + CONNECT_MS - 0.5) / (STEADY_MS - 0.5)  # Server-Timing app, 0.5 ms less
    assert figures["first_vs_steady_in_app"] == pytest.approx(in_app)
    assert figures["slow_share"] == pytest.approx(0.10)
    assert figures["paid_connect_share"] == pytest.approx(0.10)
    assert figures["slow_attribution"] == {"first-request": 10, "respawn-wait": 0, "other": 0}
    assert figures["p50_ms"] == pytest.approx(STEADY_MS)
    assert figures["max_ms"] == pytest.approx(STEADY_MS + CONNECT_MS)


def test_errors_are_counted_and_left_out_of_the_percentiles() -> None:
    run = story_run()
    _record(run.samples, 9.0, 10_000.0, 0, 0, status=0)
    _record(run.samples, 9.1, 3.0, 1009, 11, status=503)
    figures = analysis.summarize(run, processes=2)
    assert figures["errors"] == 2
    assert figures["dropped"] == 1  # no answer at all; the 503 was an answer
    assert figures["max_ms"] == pytest.approx(STEADY_MS + CONNECT_MS)


def test_a_request_queued_behind_a_respawn_is_attributed_to_it() -> None:
    samples = Samples()
    _record(samples, 0.00, 4.0, 1, 1)
    _record(samples, 0.01, 4.0, 2, 1)
    _record(samples, 0.02, 4.0, 1, 2)  # worker 1's last answer, at 0.024
    _record(samples, 0.03, 4.0, 2, 2)
    _record(samples, 0.04, 4.0, 2, 3)
    # due at 0.05, queued 30 ms outside the app while worker 1 was being replaced
    _record(samples, 0.05, 34.0, 2, 4, app_ms=4.0)
    _record(samples, 0.09, 4.0, 3, 1)  # the replacement's first answer, at 0.094
    _record(samples, 0.10, 4.0, 3, 2)
    _record(samples, 0.11, 4.0, 2, 5)
    # slow inside the app, no respawn window around it: "other"
    _record(samples, 0.20, 30.0, 2, 6, app_ms=29.0)
    run = LoadResult(LoadSpec(port=1, duration=1, rate=100), samples, 0.0, 0.0, 0.3)
    figures = analysis.summarize(run, processes=2)
    assert figures["respawns"] == 1
    assert figures["slow_attribution"] == {"first-request": 0, "respawn-wait": 1, "other": 1}


def _warm_line(forked: float, pid: int, warm_ms: float) -> str:
    """What the service writes to POSTFORK_EVENT_LOG when a worker is warm."""
    report = WarmReport(pid, "uwsgi", "worker", forked, 1, warm_ms / 1e3 - 0.002, 0.002)
    return report.to_json()


def test_respawn_gaps_pair_each_retirement_with_the_next_start() -> None:
    run = story_run(workers=2, per_worker=10, generations=3)
    samples, offset = run.samples, run.wall_offset
    workers = analysis.Workers.of(samples)
    retired = sorted(workers.retired(2), key=workers.last.__getitem__)
    assert len(retired) == 4
    lines = [_warm_line(offset - 1.0, 1000, 5.0), _warm_line(offset - 1.0, 1001, 5.0)]
    for number, pid in enumerate(retired):
        ended = samples.done[workers.last[pid]] + offset
        forked = ended + 0.008 + 0.001 * number  # 8, 9, 10, 11 ms after the last answer
        lines.append(_warm_line(forked, 2000 + number, 12.0))
    master = WarmReport(999, "uwsgi", "master", offset, 0, 0.0, 0.0)  # never a worker start
    failed = WarmReport(3000, "uwsgi", "worker", offset, 0, 0.001, 0.0, error="refused")
    lines += [master.to_json(), failed.to_json(), ""]
    gaps = analysis.respawn_gaps(run, 2, analysis.read_warm_reports(lines))
    assert gaps.to_fork == pytest.approx([8.0, 9.0, 10.0, 11.0], abs=1.0)
    assert gaps.to_ready == pytest.approx([20.0, 21.0, 22.0, 23.0], abs=1.0)
    # retired by their request count: the same four (each answered its 10th request)
    exact = analysis.respawn_gaps(run, 2, analysis.read_warm_reports(lines), max_requests=10)
    assert exact.to_fork == gaps.to_fork
    # a worker that stopped answering early without reaching it is not counted as retired
    none = analysis.respawn_gaps(run, 2, analysis.read_warm_reports(lines), max_requests=11)
    assert none.to_fork == []


def test_response_parsing_reads_worker_and_server_timing() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Worker: 4242/17\r\n"
        b"Server-Timing: db-connect;dur=7.250, pool-wait;dur=0.010, db;dur=2.1, app;dur=9.9\r\n"
        b"\r\n{}"
    )
    assert _parse(raw) == (200, 4242, 17, 7.25, 9.9)
    assert _parse(b"HTTP/1.1 503 Service Unavailable\r\n\r\n") == (503, 0, 0, 0.0, 0.0)
    assert _parse(b"garbage")[0] == 0


def test_load_spec_needs_exactly_one_loop() -> None:
    with pytest.raises(ValueError, match="either rate"):
        LoadSpec(port=1, duration=1)
    with pytest.raises(ValueError, match="either rate"):
        LoadSpec(port=1, duration=1, rate=10, connections=2)
    with pytest.raises(ValueError, match="duration"):
        LoadSpec(port=1, duration=0, rate=10)


def test_scenario_selection_keeps_the_reference() -> None:
    assert [s.name for s in select(["warm"])] == ["no-recycle", "warm"]
    assert tuple(s.name for s in select(None)) == RECYCLING_NAMES
    with pytest.raises(ValueError, match="unknown scenario"):
        select(["warm", "fastest"])


def _figures(**overrides: float) -> dict[str, object]:
    base: dict[str, object] = {
        "first_vs_steady": 1.0,
        "connects_on_request_path": 0,
        "p999_ms": 10.0,
        "paid_connect_share": 0.01,
        "closed_loop": {"rps": 1000.0},
    }
    return {**base, **overrides}


def test_targets_are_ratios_within_the_run() -> None:
    run = {
        "settings": {"max_requests": 100, "server": "uwsgi"},
        "scenarios": {
            "no-recycle": _figures(p999_ms=10.0),
            "warm": _figures(
                p999_ms=12.0, respawn_gap_to_fork_p50_ms=12.0, respawn_gap_to_ready_p50_ms=18.0
            ),
            "lazy": _figures(paid_connect_share=0.0098),
            "sqlalchemy": _figures(closed_loop={"rps": 300.0}),
        },
        "storms": {
            "storm: no recycling": {"max_ms": 20.0, "rps": 800.0},
            "storm: shipped": {"max_ms": 70.0, "rps": 700.0, "respawn_gap_to_fork_p50_ms": 8.0},
        },
    }
    results = {row["target"]: row["met"] for row in report.targets(run)}
    assert results["warm p99.9 / no-recycle p99.9"] is False  # 1.2x
    assert results["closed loop: warm req/s / sqlalchemy req/s"] is True  # 3.3x
    assert results["storm, shipped config: max latency / no recycling"] is False  # 3.5x
    assert results["storm, shipped config: req/s / no recycling"] is True  # 0.875x
    assert results["storm, shipped config: respawn gap to fork, p50 (ms)"] is True
    assert (
        results["lazy: share of requests slower than the steady median by >= 0.8x a connect"]
        is True
    )
    assert results["warm, open loop: respawn gap to fork, p50 (ms)"] is False  # 12 > 10
    assert results["warm, open loop: respawn gap to warm, p50 (ms; stretch)"] is True
    run["settings"]["server"] = "gunicorn"  # type: ignore[index]
    run["storms"]["storm: shipped"]["respawn_gap_to_fork_p50_ms"] = 15.0  # type: ignore[index]
    gunicorn = {row["target"]: row for row in report.targets(run)}
    row = gunicorn["storm, shipped config: respawn gap to fork, p50 (ms)"]
    assert row["limit"] == "<= 20" and row["met"] is True


def test_json_has_no_nan(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    report.write_json({"a": math.nan, "b": [1.0, math.nan], "c": {"d": math.nan}}, path)
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None], "c": {"d": None}}
