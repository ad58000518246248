"""``postfork doctor``: what a pool would see on a database, checked for real;
``postfork doctor budget``: the connections a deployment opens on each server, against its
limits."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import options
from .database import selected_database
from .output import say


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..doctor import report

    with selected_database(args.database_url) as (url, origin):
        ok = report.run(url, origin, args.driver, say)
    return 0 if ok else 1


def cmd_budget(args: argparse.Namespace) -> int:
    from .. import environment
    from ..doctor import budget
    from ..topology.member import server_name
    from ..url import parse_url

    shape = _shape(args)
    replicas = args.replica_url or environment.replica_urls()
    with selected_database(args.database_url, temporary=False) as (url, _origin):
        servers = [("primary", url), *(("replica", parse_url(r)) for r in replicas)]
        verdicts = [
            budget.judge(
                shape,
                budget.read_limits(server, role, server_name(server)),
                respawning=args.respawning,
            )
            for role, server in servers
        ]
    return 0 if budget.report(shape, verdicts, say) else 1


def _shape(args: argparse.Namespace) -> Any:
    from ..doctor import budget
    from ..errors import ConfigError

    found: dict[str, int] = {}
    source = "command line"
    if args.uwsgi_ini:
        found, source = budget.from_uwsgi_ini(args.uwsgi_ini), str(args.uwsgi_ini)
    elif args.gunicorn_config:
        found, source = budget.from_gunicorn_config(args.gunicorn_config), str(args.gunicorn_config)
    processes = args.processes or found.get("processes") or 4
    max_requests = (
        args.max_requests if args.max_requests is not None else found.get("max_requests", 0)
    )
    if args.min_idle > args.max_size:
        raise ConfigError(f"--min-idle {args.min_idle} is above --max-size {args.max_size}")
    return budget.Shape(
        hosts=args.hosts,
        processes=processes,
        max_size=args.max_size,
        min_idle=args.min_idle,
        max_requests=max_requests,
        source=source,
    )


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "doctor", help="check a database and driver: connect cost, timeouts, fork safety"
    )
    options.database_url(parser)
    options.driver(parser)
    parser.set_defaults(handler=cmd_doctor)
    actions = parser.add_subparsers(dest="doctor_command", metavar="ACTION")
    plan = actions.add_parser(
        "budget",
        help="connections at peak on each server (hosts x processes x pool) against its limits",
    )
    options.database_url(plan, temporary=False)
    plan.add_argument(
        "--replica-url",
        action="append",
        metavar="URL",
        help="a replica (repeat; default: $POSTFORK_REPLICA_URLS, comma-separated)",
    )
    plan.add_argument("--hosts", type=options.positive_int, default=1, help="app hosts (default 1)")
    plan.add_argument("--processes", type=options.positive_int, help="worker processes per host")
    config = plan.add_mutually_exclusive_group()
    config.add_argument(
        "--uwsgi-ini", type=Path, metavar="FILE", help="read processes, max-requests"
    )
    config.add_argument(
        "--gunicorn-config", type=Path, metavar="FILE", help="read workers, max_requests"
    )
    plan.add_argument("--max-size", type=options.positive_int, default=4, help="pool max_size")
    plan.add_argument("--min-idle", type=int, default=1, help="pool min_idle")
    plan.add_argument("--max-requests", type=int, help="recycling by request count (0: none)")
    plan.add_argument(
        "--respawning",
        type=int,
        help="workers per host respawning at one moment (default: all, when recycling)",
    )
    plan.set_defaults(handler=cmd_budget)
