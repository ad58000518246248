"""The bench's command line: the recorded command never carries a database password, and the
open loop's rate comes from the capacity the bench measured."""

from __future__ import annotations

import pytest

from postfork.errors import ConfigError
from postfork_tools.bench.loadgen import LoadResult, LoadSpec, Samples
from postfork_tools.bench.suite import (
    DEFAULT_LOAD_SHARE,
    BenchOptions,
    NoCapacity,
    OverCapacity,
    _redacted,
    capacity_rps,
)


def test_database_urls_in_the_recorded_command_are_redacted() -> None:
    argv = [
        "--quick",
        "--database-url",
        "mysql://app:s3cret@db:3306/shop?ssl_mode=verify_identity&ssl_ca=/ca.pem",
        "--database-url=mysql+pymysql://app:s3cret@db/shop",
        "--rate",
        "5",
    ]
    shown = " ".join(_redacted(argv))
    assert "s3cret" not in shown
    assert "mysql://app:***@db:3306/shop?ssl_ca=/ca.pem&ssl_mode=verify_identity" in shown
    assert "--database-url=mysql+pymysql://app:***@db:3306/shop" in shown
    assert shown.startswith("--quick --database-url ") and shown.endswith("--rate 5")


def test_a_malformed_url_is_not_echoed() -> None:
    assert _redacted(["--database-url", "mysql://app:pa#ss@db/x"]) == [
        "--database-url",
        "<a malformed database URL>",
    ]


# -- the open loop's rate, from the capacity the bench measured ------------------------------


def _closed_loop(statuses: list[int], elapsed: float) -> LoadResult:
    samples = Samples(status=statuses, due=[0.0] * len(statuses))
    return LoadResult(LoadSpec(port=1, duration=1.0, connections=8), samples, 0.0, 0.0, elapsed)


def test_the_default_rate_is_a_stated_share_of_the_measured_capacity() -> None:
    assert BenchOptions(processes=32).open_rate(1200.0) == DEFAULT_LOAD_SHARE * 1200.0
    assert BenchOptions(processes=4).open_rate(1200.0) == DEFAULT_LOAD_SHARE * 1200.0
    assert BenchOptions(rate=300.0).open_rate(1200.0) == 300.0


def test_a_rate_above_the_capacity_is_refused_with_the_figures() -> None:
    with pytest.raises(OverCapacity) as refused:
        BenchOptions(processes=32, rate=1600.0).open_rate(1150.4)
    message = str(refused.value)
    assert "--rate 1600 req/s is above the 1150 req/s" in message
    assert "32 processes" in message and "at most 1150" in message
    assert isinstance(refused.value, ConfigError)  # one line from the CLI, exit status 2


def test_capacity_counts_only_successful_answers_and_refuses_none() -> None:
    assert capacity_rps(_closed_loop([200] * 90 + [503] * 10, 2.0), "no-recycle") == 45.0
    with pytest.raises(NoCapacity, match="no-recycle: the server answered no request"):
        capacity_rps(_closed_loop([0, 503], 2.0), "no-recycle")
