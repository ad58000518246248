"""``postfork bench``: the 1% tail reproduced and the fix measured, every scenario in one run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from postfork.cli import options
from postfork.errors import ConfigError, MissingExtra
from postfork_tools.bench.scenarios import ASGI_RECYCLING_NAMES, RECYCLING_NAMES, select
from postfork_tools.serve.command import RECYCLING_ASGI_SERVERS


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        from rich.console import Console

        from postfork_tools.bench.main import run_bench
        from postfork_tools.bench.suite import BenchOptions
    except ImportError as exc:
        raise MissingExtra(f"postfork bench's {exc.name}", "bench") from exc

    settings = {
        "server": args.server,
        "processes": args.processes,
        "max_requests": args.max_requests,
        "db_delay_ms": args.db_delay_ms,
        "connections": args.connections,
        "storms": not args.no_storms,
        "orm": args.orm,
        "driver": args.driver,
        "database_url": args.database_url,
        "scenario_names": tuple(args.scenarios or ()),
    }
    for name in ("rate", "duration", "closed_duration", "storm_duration"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    bench_options = BenchOptions.quick(**settings) if args.quick else BenchOptions(**settings)
    try:
        select(list(bench_options.scenario_names) or None, asgi=bench_options.asgi)
    except ValueError as exc:
        raise ConfigError(f"{exc} (under {args.server})") from None
    console = Console()
    if not console.is_terminal:  # a pipe or a file: do not squeeze the tables into 80 columns
        console = Console(width=130)
    return run_bench(bench_options, args.json, args.plot, console)


def _scenario_list(text: str) -> list[str]:
    """The names; ``select`` checks them in cmd_bench, against the server's scenarios."""
    return [name.strip() for name in text.split(",") if name.strip()]


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "bench",
        help="reproduce the 1%% tail and measure the fix: every scenario side by side",
        description="Runs the reference service once per scenario (no-recycle, lazy, postfork, "
        "warm, sqlalchemy) under a real server behind a delay proxy, drives an open loop at a "
        "fixed rate and a closed loop, then the recycling-storm variants; prints the tables "
        "and the targets, writes --json and --plot.",
    )
    options.server(parser, ("uwsgi", "gunicorn", *RECYCLING_ASGI_SERVERS), max_requests_minimum=1)
    parser.add_argument(
        "--db-delay-ms",
        type=options.non_negative_float,
        default=1.0,
        help="one-way delay of the proxy between the service and the database (0: no proxy)",
    )
    parser.add_argument(
        "--rate",
        type=options.positive_float,
        help="open loop req/s (default: 20%% of the capacity the no-recycle closed loop "
        "measures first; a rate above that capacity is refused)",
    )
    parser.add_argument(
        "--duration", type=options.positive_float, help="open loop seconds per scenario (60)"
    )
    parser.add_argument(
        "--closed-duration", type=options.positive_float, help="closed loop seconds (20)"
    )
    parser.add_argument(
        "--storm-duration", type=options.positive_float, help="seconds per storm variant (30)"
    )
    parser.add_argument(
        "--connections", type=options.positive_int, default=8, help="closed loop (8)"
    )
    parser.add_argument(
        "--scenarios",
        type=_scenario_list,
        help=f"comma-separated subset of {','.join(RECYCLING_NAMES)} (under an ASGI server: "
        f"{','.join(ASGI_RECYCLING_NAMES)})",
    )
    parser.add_argument("--no-storms", action="store_true", help="skip the recycling storms")
    parser.add_argument(
        "--orm",
        action="store_true",
        help=(
            "also the ORM scenarios: SQLAlchemy and Django, stock and on postfork (under an "
            "ASGI server: Django, through its ASGI handler)"
        ),
    )
    parser.add_argument("--quick", action="store_true", help="short runs: about 2.5 minutes")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", type=Path, metavar="PATH", help="write the percentile plot")
    options.driver(parser, asyncio=True)
    options.database_url(parser)
    parser.set_defaults(handler=cmd_bench)
