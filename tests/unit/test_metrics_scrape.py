"""A scrape that meets a worker's metrics file in the instant prometheus_client creates it
(empty, sized a moment later) retries instead of answering 500; a file that stays unreadable
still fails the scrape."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from postfork import Pool
from postfork.observe import metrics_files
from postfork.observe.metrics import ServiceMetrics

from .fakes import FakeDriver


def another_live_life() -> str:
    """A life that is running (the test runner's parent), so no compaction touches its files."""
    parent = os.getppid()
    return f"{parent}-{metrics_files._start_time(parent)}"


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("metrics")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROMETHEUS_MULTIPROC_DIR", str(path))
        yield path


@pytest.fixture(scope="module")
def metrics(directory: Path) -> ServiceMetrics:
    """One per process: prometheus_client registers each metric once."""
    pool = Pool("mysql://u@db/x", driver=FakeDriver())  # type: ignore[arg-type]
    return ServiceMetrics(pool)


def test_a_file_being_created_is_read_once_it_is_sized(
    metrics: ServiceMetrics, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race made deterministic: the first collection meets the empty file (as
    prometheus_client's open() leaves it before its truncate()); it is sized before the next."""
    from prometheus_client.mmap_dict import MmapedDict

    being_created = directory / f"counter_{another_live_life()}.db"
    being_created.touch()
    real = metrics._exposition.generate_latest
    calls: list[int] = []

    def collect(registry: object) -> bytes:
        calls.append(1)
        try:
            return bytes(real(registry))
        finally:
            if len(calls) == 1:
                MmapedDict(str(being_created)).close()  # the creating worker sizes it

    monkeypatch.setattr(metrics._exposition, "generate_latest", collect)
    assert b"postfork_" in metrics.render()
    assert len(calls) == 2  # the first met the empty file and failed; the retry read it


def test_a_file_that_stays_unreadable_fails_the_scrape(
    metrics: ServiceMetrics, directory: Path
) -> None:
    broken = directory / f"histogram_{another_live_life()}.db"
    broken.touch()
    try:
        with pytest.raises(struct.error):
            metrics.render()
    finally:
        broken.unlink()
