"""Compaction of the multiprocess metrics directory, on real files: ended lives are merged
into the archive and removed, a live one and foreign files are left alone, a reused pid is a
different life, and the totals a scrape reads are the same before and after."""

from __future__ import annotations

import json
import os
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector

from postfork.observe import metrics_files

KEY = json.dumps(["requests", "requests_total", {}, "Requests"])
GAUGE_KEY = json.dumps(["idle", "idle", {}, "Idle connections"])


def write(directory: Path, name: str, value: float) -> None:
    data = MmapedDict(str(directory / name))
    data.write_value(GAUGE_KEY if name.startswith("gauge") else KEY, value, 0.0)
    data.close()


def total(directory: Path) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("requests_total"):
            return float(line.split()[-1])
    return 0.0


def ended_life() -> str:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    life = f"{pid}-{metrics_files._start_time(pid) or 1}"
    os.waitpid(pid, 0)
    return life


def test_ended_lives_are_merged_a_live_one_and_foreign_files_stay(tmp_path: Path) -> None:
    mine = metrics_files.life_id()
    reused = f"{os.getpid()}-1"  # this pid, another start time: a life that ended
    dead = ended_life()
    write(tmp_path, f"counter_{mine}.db", 1)
    write(tmp_path, f"counter_{reused}.db", 10)
    write(tmp_path, f"counter_{dead}.db", 100)
    write(tmp_path, f"gauge_livesum_{dead}.db", 7)
    write(tmp_path, "counter_1000.db", 1000)  # plain prometheus_client naming: not ours
    assert total(tmp_path) == 1111

    assert metrics_files.compact(str(tmp_path)) == 3
    names = {p.name for p in tmp_path.glob("*.db")}
    assert names == {f"counter_{mine}.db", "counter_archive.db", "counter_1000.db"}
    assert total(tmp_path) == 1111  # nothing lost, nothing doubled

    write(tmp_path, f"counter_{ended_life()}.db", 5000)  # a second compaction adds to the archive
    assert metrics_files.compact(str(tmp_path)) == 1
    assert total(tmp_path) == 6111
    assert metrics_files.compact(str(tmp_path)) == 0


def test_compaction_waits_for_a_scrape_or_gives_up(tmp_path: Path) -> None:
    write(tmp_path, f"counter_{ended_life()}.db", 3)
    with metrics_files.scrape_lock(str(tmp_path)):
        assert metrics_files.compact(str(tmp_path)) == 0  # a scrape holds the lock: not now
        assert len(list(tmp_path.glob("counter_*.db"))) == 1
    assert metrics_files.compact(str(tmp_path)) == 1


def test_life_id_is_pid_and_start_time() -> None:
    pid, _, started = metrics_files.life_id().partition("-")
    assert int(pid) == os.getpid() and started == metrics_files._start_time(os.getpid())
    assert not metrics_files.life_ended(metrics_files.life_id())
    assert metrics_files.life_ended(f"{os.getpid()}-1")
    assert not metrics_files.life_ended("archive") and not metrics_files.life_ended("1000")


def test_the_directory_is_swept_as_often_at_2_writers_as_at_32(tmp_path: Path) -> None:
    from postfork.observe.metrics import MAX_SWEEP_SECONDS, SWEEP_SECONDS, sweep_period

    mine, dead = metrics_files.life_id(), ended_life()
    for life in (mine, dead):
        for kind in ("counter", "histogram", "gauge_livesum"):
            write(tmp_path, f"{kind}_{life}.db", 1)
    # the period follows the running lives (with a live gauge), not the files of ended ones
    # (their count must not slow the sweep that removes them), nor the archive
    assert metrics_files.lives(str(tmp_path)) == (2, 2)  # the dead one's gauge is still there
    metrics_files.compact(str(tmp_path))
    write(tmp_path, f"counter_{ended_life()}.db", 1)
    assert metrics_files.lives(str(tmp_path)) == (2, 1)
    for writers in (2, 32):
        periods = [sweep_period(writers) for _ in range(200)]
        # each writer every `writers` x SWEEP_SECONDS (+-50%): the directory every SWEEP_SECONDS
        assert 0.5 * SWEEP_SECONDS * writers <= min(periods)
        assert max(periods) <= 1.5 * SWEEP_SECONDS * writers
    assert sweep_period(10_000) == MAX_SWEEP_SECONDS
    assert sweep_period(0) <= 1.5 * SWEEP_SECONDS


def test_a_dying_worker_merges_only_when_the_sweeps_fell_behind(tmp_path: Path) -> None:
    running = [f"{100 + n}-7" for n in range(2)]  # names only: behind() reads no /proc
    for life in running:
        write(tmp_path, f"counter_{life}.db", 1)
        write(tmp_path, f"gauge_livesum_{life}.db", 1)
    write(tmp_path, "counter_archive.db", 1)
    ended = [f"{200 + n}-7" for n in range(4)]
    for life in ended[:4]:  # 2 running + 4 ended = 6 lives <= 2 x 2 + 2: the sweep's job
        write(tmp_path, f"counter_{life}.db", 1)
    assert not metrics_files.behind(str(tmp_path))
    write(tmp_path, "histogram_300-7.db", 1)  # a seventh life: the sweeps fell behind
    assert metrics_files.behind(str(tmp_path))
