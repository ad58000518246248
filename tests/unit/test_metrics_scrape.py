"""A scrape that meets a worker's metrics file in the instant prometheus_client creates it
(empty, sized a moment later) leaves that file out instead of answering 500, at once and
whatever the timing; a file with data that cannot be read still fails the scrape."""

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


def test_a_file_being_created_is_left_out_until_it_is_sized(
    metrics: ServiceMetrics, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race made deterministic: the file exists empty, as prometheus_client's open()
    leaves it before its truncate(), for as long as the scrape takes (on a loaded machine the
    creating worker may not run again for milliseconds: retries 1 and 2 ms apart lost)."""
    from prometheus_client.mmap_dict import MmapedDict

    being_created = directory / f"counter_{another_live_life()}.db"
    being_created.touch()
    real = metrics._exposition.generate_latest
    calls: list[int] = []

    def collect(registry: object) -> bytes:
        calls.append(1)
        return bytes(real(registry))

    monkeypatch.setattr(metrics._exposition, "generate_latest", collect)
    try:
        assert b"postfork_" in metrics.render()
        assert len(calls) == 1  # one collection, no retry
        sized = MmapedDict(str(being_created))  # the creating worker sizes it, then counts
        key = '["postfork_test_sized", "postfork_test_sized_total", {}, "a sized file"]'
        sized.write_value(key, 3.0, 0.0)
        sized.close()
        assert b"postfork_test_sized_total 3.0" in metrics.render()
    finally:
        being_created.unlink()


def test_a_file_with_data_that_cannot_be_read_fails_the_scrape(
    metrics: ServiceMetrics, directory: Path
) -> None:
    broken = directory / f"histogram_{another_live_life()}.db"
    broken.write_bytes(struct.pack("i", 100) + bytes(4))  # says 100 bytes are used, holds 8
    try:
        with pytest.raises(struct.error):
            metrics.render()
    finally:
        broken.unlink()
