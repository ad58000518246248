"""The bench's outputs: the targets checked as ratios within the run, the terminal tables, the
JSON file and the percentile plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from postfork_tools.bench.suite import HIGH_LOAD_SHARE
from postfork_tools.serve.command import ASGI_SERVERS

ATTRIBUTION = ("first-request", "respawn-wait", "other")

# -- targets -------------------------------------------------------------------------------


def _target(name: str, value: float, limit: str, met: bool) -> dict[str, Any]:
    return {"target": name, "value": value, "limit": limit, "met": bool(met)}


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets, each a ratio of figures measured side by side in this run."""
    scenarios, storms = report["scenarios"], report.get("storms", {})
    out = []
    warm, ideal = scenarios.get("warm"), scenarios.get("no-recycle")
    if warm:
        out.append(
            _target(
                "warm: a new worker's first request / steady-state median",
                warm["first_vs_steady"],
                "<= 1.1",
                warm["first_vs_steady"] <= 1.1,
            )
        )
        out.append(
            _target(
                "warm: connects on the request path",
                warm["connects_on_request_path"],
                "== 0",
                warm["connects_on_request_path"] == 0,
            )
        )
    asgi = report["settings"]["server"] in ASGI_SERVERS  # ASGI servers' gaps: measured only
    if warm and "respawn_gap_to_fork_p50_ms" in warm and not asgi:
        gap, ready = warm["respawn_gap_to_fork_p50_ms"], warm["respawn_gap_to_ready_p50_ms"]
        out.append(
            _target("warm, open loop: respawn gap to fork, p50 (ms)", gap, "<= 10", gap <= 10)
        )
        out.append(
            _target(
                "warm, open loop: respawn gap to warm, p50 (ms; stretch)",
                ready,
                "<= 20",
                ready <= 20,
            )
        )
    if warm and ideal:
        ratio = warm["p999_ms"] / ideal["p999_ms"]
        out.append(_target("warm p99.9 / no-recycle p99.9", ratio, "<= 1.1", ratio <= 1.1))
    lazy = scenarios.get("lazy")
    if lazy:
        share = lazy["paid_connect_share"]
        out.append(
            _target(
                "lazy: share of requests slower than the steady median by >= 0.8x a connect",
                share,
                "about 1 in max-requests",
                0.5 / report["settings"]["max_requests"]
                <= share
                <= 2.0 / report["settings"]["max_requests"],
            )
        )
    sqlalchemy = scenarios.get("sqlalchemy")
    if warm and sqlalchemy:
        ratio = warm["closed_loop"]["rps"] / sqlalchemy["closed_loop"]["rps"]
        out.append(
            _target("closed loop: warm req/s / sqlalchemy req/s", ratio, ">= 2.5", ratio >= 2.5)
        )
    shipped, anchor = storms.get("storm: shipped"), storms.get("storm: no recycling")
    if shipped and anchor:
        ratio = shipped["max_ms"] / anchor["max_ms"]
        out.append(
            _target("storm, shipped config: max latency / no recycling", ratio, "<= 3", ratio <= 3)
        )
        ratio = shipped["rps"] / anchor["rps"]
        out.append(
            _target("storm, shipped config: req/s / no recycling", ratio, ">= 0.8", ratio >= 0.8)
        )
        gap = shipped["respawn_gap_to_fork_p50_ms"]
        limit = 10 if report["settings"]["server"] == "uwsgi" else 20
        out.append(
            _target(
                "storm, shipped config: respawn gap to fork, p50 (ms)",
                gap,
                f"<= {limit}",
                gap <= limit,
            )
        )
    return out


def orm_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The ORM targets: the ORMs on postfork against their stock configurations."""
    orm = report.get("orm", {})
    out = []
    stock_sa, ours_sa = orm.get("sqlalchemy"), orm.get("sqlalchemy on postfork")
    if stock_sa and ours_sa:
        out += [
            _target(
                "SQLAlchemy on postfork: connects on the request path",
                ours_sa["connects_on_request_path"],
                "== 0",
                ours_sa["connects_on_request_path"] == 0,
            ),
            _target(
                "SQLAlchemy on postfork: a new worker's first request / steady median",
                ours_sa["first_vs_steady"],
                "<= 1.1",
                ours_sa["first_vs_steady"] <= 1.1,
            ),
        ]
        ratio = ours_sa["closed_loop"]["rps"] / stock_sa["closed_loop"]["rps"]
        out.append(
            _target("closed loop: SQLAlchemy on postfork / stock", ratio, ">= 2", ratio >= 2)
        )
    stock_dj, ours_dj = orm.get("django"), orm.get("django on postfork")
    if stock_dj and ours_dj:
        out.append(
            _target(
                "Django on postfork: connects on the request path",
                ours_dj["connects_on_request_path"],
                "== 0",
                ours_dj["connects_on_request_path"] == 0,
            )
        )
        ratio = ours_dj["p50_ms"] / stock_dj["p50_ms"]
        out.append(
            _target("Django on postfork p50 / default Django p50", ratio, "<= 0.6", ratio <= 0.6)
        )
    persistent = orm.get("django persistent")
    if persistent and ours_dj and "statements_per_request" in ours_dj:
        saved = persistent["statements_per_request"] - ours_dj["statements_per_request"]
        out.append(
            _target(
                "Django: statements per request, persistent + health checks minus on postfork "
                "(the ping)",
                saved,
                ">= 0.9",
                saved >= 0.9,
            )
        )
    return out


def warnings(report: dict[str, Any]) -> list[str]:
    notes = []
    proxy = report["proxy"]
    if proxy.get("delay_ms") and not proxy["within_tolerance"]:
        notes.append(
            f"the delay proxy adds {proxy['added_round_trip_ms']:.2f} ms per round trip, "
            f"not the {proxy['expected_round_trip_ms']:.2f} ms asked for"
        )
    generator = report["generator"]
    if generator["peak_share_of_ceiling"] > 0.7:
        notes.append(
            f"a closed loop reached {generator['peak_share_of_ceiling']:.0%} of the load "
            "generator's own ceiling: its req/s may be the generator's limit, not the service's"
        )
    load = report.get("load") or {}
    rate = report["settings"]["open_rate"]
    if load.get("capacity_rps") and rate > HIGH_LOAD_SHARE * load["capacity_rps"]:
        notes.append(
            f"the open loop's {rate:.0f} req/s is {rate / load['capacity_rps']:.0%} of the "
            f"{load['capacity_rps']:.0f} req/s capacity: its latencies include queueing"
        )
    for name, figures in {**report["scenarios"], **report.get("orm", {})}.items():
        if figures["closed_loop"]["rps"] < rate:
            notes.append(
                f"{name}: its closed loop served {figures['closed_loop']['rps']:.0f} req/s, "
                f"below the open loop's {rate:.0f}: its open-loop figures measure a queue"
            )
        if figures["send_lag_p99_ms"] > 1.0:
            notes.append(
                f"{name}: the generator sent 1% of requests more than "
                f"{figures['send_lag_p99_ms']:.1f} ms late (counted in their latency)"
            )
    return notes


# -- terminal ------------------------------------------------------------------------------


def _per_request(figures: dict[str, Any], key: str, digits: int = 2) -> str:
    return f"{figures[key]:.{digits}f}" if key in figures else "-"


def _ms(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1f}"


def _ratio(value: float) -> str:
    """A first/steady ratio ("-" where there was no respawn, or no app time to divide)."""
    return "-" if value is None or math.isnan(value) else f"{value:.2f}x"


def _table(title: str, columns: tuple[str, ...], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _load_choice(load: dict[str, Any] | None) -> str:
    """How the open-loop rate relates to the capacity (older JSON files have no ``load``)."""
    if not load or not load.get("capacity_rps"):
        return ""
    share = load["open_rate"] / load["capacity_rps"]
    return f"({share:.0%} of the {load['capacity_rps']:.0f} req/s capacity, {load['chosen']}) "


def print_report(report: dict[str, Any], console: Console) -> None:
    settings = report["settings"]
    proxy = report["proxy"]
    console.print(
        f"[bold]postfork bench[/bold]: {settings['server']}, {settings['processes']} processes, "
        f"max-requests {settings['max_requests']}; open loop {settings['open_rate']:.0f} req/s "
        f"{_load_choice(report.get('load'))}"
        f"for {settings['duration']:.0f} s, closed loop {settings['connections']} connections; "
        f"database {report['database']['url']} [{report['database']['origin']}]"
    )
    if proxy.get("delay_ms"):
        console.print(
            f"delay proxy {proxy['delay_ms']} ms each way: measured +"
            f"{proxy['added_round_trip_ms']:.2f} ms per round trip (expected "
            f"{proxy['expected_round_trip_ms']:.2f}); through it a connect costs "
            f"{proxy['connect_proxied_ms']:.1f} ms (~{proxy['connect_round_trips']:.1f} round "
            f"trips), a query {proxy['query_proxied_ms']:.2f} ms"
        )
    console.print(
        f"load generator ceiling: {report['generator']['ceiling_rps']:.0f} req/s "
        "(closed loop against a server that answers at once)"
    )
    scenarios = report["scenarios"]
    console.print(
        _table(
            "open loop: latency from each request's scheduled send time (ms)",
            ("scenario", "requests", "errors", "p50", "p90", "p99", "p99.9", "max", "slow"),
            [
                [
                    name,
                    str(f["requests"]),
                    str(f["errors"]),
                    *(_ms(f[key]) for key in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")),
                    f"{f['slow_share']:.2%}",
                ]
                for name, f in scenarios.items()
            ],
        )
    )
    console.print(
        _table(
            "where the tail comes from; closed-loop throughput",
            (
                "scenario",
                "respawns",
                "connects\non path",
                "1st req\np50 ms",
                "1st /\nsteady",
                "in app",
                "slow: 1st req /\nrespawn wait /\nother",
                "closed loop\nreq/s",
                "closed\nerrors",
                "statements\n/request",
            ),
            [
                [
                    name,
                    str(f["respawns"]),
                    str(f["connects_on_request_path"]),
                    _ms(f["first_after_respawn_p50_ms"]),
                    _ratio(f["first_vs_steady"]),
                    _ratio(f.get("first_vs_steady_in_app", math.nan)),
                    " / ".join(str(f["slow_attribution"][k]) for k in ATTRIBUTION),
                    f"{f['closed_loop']['rps']:.0f}",
                    str(f["closed_loop"]["errors"]),
                    _per_request(f, "statements_per_request"),
                ]
                for name, f in scenarios.items()
            ],
        )
    )
    if report.get("orm"):
        console.print(
            _table(
                "ORMs: the summary endpoint through SQLAlchemy and Django, open loop (ms); "
                "statements and connections per request, as the database saw them",
                (
                    "scenario",
                    "requests",
                    "errors",
                    "p50",
                    "p99",
                    "p99.9",
                    "statements\n/request",
                    "connections\n/request",
                    "1st /\nsteady",
                    "closed loop\nreq/s",
                ),
                [
                    [
                        name,
                        str(f["requests"]),
                        str(f["errors"] + f["closed_loop"]["errors"]),
                        *(_ms(f[key]) for key in ("p50_ms", "p99_ms", "p999_ms")),
                        _per_request(f, "statements_per_request"),
                        _per_request(f, "connections_per_request", 3),
                        _ratio(f["first_vs_steady"]),
                        f"{f['closed_loop']['rps']:.0f}",
                    ]
                    for name, f in report["orm"].items()
                ],
            )
        )
    if report.get("storms"):
        console.print(
            _table(
                "recycling storms, closed loop (ms); respawn gap: old worker's last answer to "
                "the new one's fork / to it being warm",
                (
                    "variant",
                    "req/s",
                    "errors",
                    "p50",
                    "p99",
                    "max",
                    "respawns",
                    "gap\nfork p50",
                    "gap\nfork p99",
                    "gap\nready p50",
                ),
                [
                    [
                        name,
                        f"{f['rps']:.0f}",
                        str(f["errors"]),
                        _ms(f["p50_ms"]),
                        _ms(f["p99_ms"]),
                        _ms(f["max_ms"]),
                        str(f["respawns"]),
                        _ms(f["respawn_gap_to_fork_p50_ms"]),
                        _ms(f["respawn_gap_to_fork_p99_ms"]),
                        _ms(f["respawn_gap_to_ready_p50_ms"]),
                    ]
                    for name, f in report["storms"].items()
                ],
            )
        )
    console.print(
        _table(
            "targets (ratios within this run)",
            ("target", "value", "limit", "result"),
            [
                [
                    row["target"],
                    f"{row['value']:.3f}" if isinstance(row["value"], float) else str(row["value"]),
                    row["limit"],
                    "[green]met[/]" if row["met"] else "[red]missed[/]",
                ]
                for row in report["targets"]
            ],
        )
    )
    for note in report["warnings"]:
        console.print(f"[yellow]warning:[/] {note}")


# -- files ---------------------------------------------------------------------------------


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_no_nan(report), indent=2, allow_nan=False) + "\n")


def _no_nan(value: Any) -> Any:
    """JSON has no NaN: a figure that could not be measured (no respawn seen) becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _no_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_no_nan(item) for item in value]
    return value


def plot(curves: dict[str, dict[str, list[float]]], title: str, path: Path) -> None:
    """Latency by percentile, one line per scenario, on a 'number of nines' axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(name, lines) for name, lines in curves.items() if lines]
    figure, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 5), squeeze=False)
    for axis, (panel, lines) in zip(axes[0], panels, strict=True):
        for label, ordered in lines.items():
            n = len(ordered)
            if not n:
                continue
            xs = [1.0 / (1.0 - (i + 0.5) / n) for i in range(n)]  # 1/(1-p): 10 = p90, 1000 = p99.9
            axis.plot(xs, ordered, label=label, linewidth=1.4)
        axis.set_xscale("log")
        axis.set_yscale("log")
        ticks = [1, 2, 10, 100, 1000, 10000]
        axis.set_xticks(ticks, ["p0", "p50", "p90", "p99", "p99.9", "p99.99"])
        axis.set_xlim(1, max(10, max((len(v) for v in lines.values()), default=10)))
        axis.set_xlabel("percentile")
        axis.set_ylabel("latency (ms)")
        axis.set_title(panel)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
