"""``postfork bench`` end to end, shortened: real uWSGI, the real delay proxy, a private MariaDB.

The figures are not timed assertions: what is checked is what the scenarios must show by
construction (lazy workers connect on a request, warm ones never do; recycling respawns
workers; the accelerated master replaces them far below its one-second tick), that nothing
fails, and that the outputs are complete.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from postfork_tools.embedded import EmbeddedMariaDB

pytestmark = pytest.mark.bench_tool  # make test-bench: the bench tool end to end

POSTFORK = str(Path(sys.executable).parent / "postfork")


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    out = tmp_path_factory.mktemp("bench")
    with EmbeddedMariaDB() as server:
        done = subprocess.run(
            [
                POSTFORK,
                "bench",
                "--database-url",
                server.url.render_secret(),
                "--scenarios",
                "lazy,warm",
                "--processes",
                "2",
                "--max-requests",
                "10",
                "--rate",
                "60",
                "--duration",
                "4",
                "--closed-duration",
                "1.5",
                "--storm-duration",
                "4",
                "--json",
                str(out / "bench.json"),
                "--plot",
                str(out / "bench.png"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "bench.json").read_text()), out, done.stdout


@pytest.mark.timeout(360)
def test_every_scenario_runs_without_a_failed_request(
    bench_run: tuple[dict[str, Any], Path, str],
) -> None:
    report, _, _ = bench_run
    assert report["schema"] == "postfork-bench/1"
    assert list(report["scenarios"]) == ["no-recycle", "lazy", "warm"]
    assert list(report["storms"]) == [
        "storm: no recycling",
        "storm: server defaults",
        "storm: shipped",
    ]
    for figures in report["scenarios"].values():
        assert figures["requests"] >= 200
        assert figures["errors"] == 0
        assert figures["closed_loop"]["errors"] == 0
        assert figures["closed_loop"]["requests"] > 0
    for figures in report["storms"].values():
        assert figures["errors"] == 0


def test_lazy_pays_connects_on_the_request_path_and_warm_never_does(
    bench_run: tuple[dict[str, Any], Path, str],
) -> None:
    story = bench_run[0]["scenarios"]
    assert story["no-recycle"]["respawns"] == 0
    for name in ("lazy", "warm"):
        assert story[name]["respawns"] >= 10  # ~240 requests, a worker per 10
    lazy, warm = story["lazy"], story["warm"]
    assert lazy["connects_on_request_path"] >= lazy["respawns"]
    assert lazy["slow_attribution"]["first-request"] > 0
    assert warm["connects_on_request_path"] == 0
    assert lazy["first_after_respawn_p50_ms"] > warm["first_after_respawn_p50_ms"]


def test_the_proxy_is_measured_and_the_shipped_config_respawns_fast(
    bench_run: tuple[dict[str, Any], Path, str],
) -> None:
    report = bench_run[0]
    proxy = report["proxy"]
    assert proxy["delay_ms"] == 1.0
    assert 1.5 < proxy["added_round_trip_ms"] < 5.0  # 2 x 1 ms plus the proxy's own cost
    assert report["generator"]["ceiling_rps"] > 0
    load = report["load"]  # the no-recycle closed loop ran first and sized the open loop
    assert load["capacity_rps"] > 60 and load["open_rate"] == 60
    assert load["chosen"] == "asked (--rate)"
    assert report["scenarios"]["no-recycle"]["closed_loop"]["rps"] == pytest.approx(
        load["capacity_rps"], rel=0.01
    )
    shipped = report["storms"]["storm: shipped"]
    assert shipped["respawns"] > 0
    assert shipped["respawn_gap_to_fork_p50_ms"] is not None
    assert shipped["respawn_gap_to_fork_p50_ms"] < 500  # the unaccelerated master waits ~1 s
    assert {row["target"] for row in report["targets"]} >= {
        "warm: connects on the request path",
        "storm, shipped config: respawn gap to fork, p50 (ms)",
    }


def test_the_table_and_the_plot_are_written(bench_run: tuple[dict[str, Any], Path, str]) -> None:
    _, out, stdout = bench_run
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in ("open loop", "recycling storms", "targets"):
        assert heading in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenarios", "warm,fastest"], "unknown scenario(s) fastest"),
        (["--duration", "-3"], "--duration: must be a positive number"),
        (["--db-delay-ms", "soon"], "--db-delay-ms: must be a number >= 0"),
        (
            ["--database-url", "mysql://root:hunter2@127.0.0.1:1/x", "--no-storms"],
            "127.0.0.1:1",
        ),
    ],
)
def test_bad_input_is_one_line_without_a_password(args: list[str], message: str) -> None:
    done = subprocess.run([POSTFORK, "bench", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


@pytest.mark.timeout(180)
def test_a_rate_above_the_measured_capacity_is_refused_and_nothing_is_left_running() -> None:
    servers_before = _running("deploy/uwsgi.ini")
    with EmbeddedMariaDB() as server:
        done = subprocess.run(
            [POSTFORK, "bench", "--database-url", server.url.render_secret(), "--no-storms",
             "--scenarios", "lazy", "--processes", "2", "--rate", "1000000",
             "--closed-duration", "1.5", "--duration", "2"],
            capture_output=True, text=True, timeout=150,
        )  # fmt: skip
        proxies = _running(f"delay_proxy --target unix:{server.socket}")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "--rate 1e+06 req/s is above the" in done.stderr
    assert "measures only its growing queue" in done.stderr
    assert "Traceback" not in done.stderr
    assert proxies == set()
    assert _running("deploy/uwsgi.ini") <= servers_before


def _running(command_part: str) -> set[str]:
    found = subprocess.run(["pgrep", "-f", command_part], capture_output=True, text=True)
    return set(found.stdout.split())
