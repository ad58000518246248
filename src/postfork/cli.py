"""The ``postfork`` command: the only place that prints. Errors are one line, never a traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__, _config, errors
from ._database import selected_database
from ._embedded import EmbeddedMariaDB

EXIT_ERROR = 2


def _say(line: str) -> None:
    print(line, flush=True)


def cmd_db_start(args: argparse.Namespace) -> int:
    running = EmbeddedMariaDB.from_state()
    if running is None:
        running = EmbeddedMariaDB(port=args.port)
        running.start(detach=True)
        running.save_state()
        print(
            f"started embedded MariaDB (pid {running.pid}, datadir {running.base})", file=sys.stderr
        )
    _say(running.url.render_secret())
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    running = EmbeddedMariaDB.from_state()
    if running is None:
        print("no embedded MariaDB is running", file=sys.stderr)
        EmbeddedMariaDB.forget_state()
        return 0
    running.stop()
    EmbeddedMariaDB.forget_state()
    print(f"stopped embedded MariaDB and removed {running.base}", file=sys.stderr)
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    running = EmbeddedMariaDB.from_state()
    if running is None:
        print("no embedded MariaDB is running; start one with: postfork db start", file=sys.stderr)
        return 1
    _say(running.url.render_secret())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from . import _demo

    with selected_database(args.database_url) as (url, origin):
        ok = _demo.run(url, origin, _say)
    return 0 if ok else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    from . import _doctor

    with selected_database(args.database_url) as (url, origin):
        ok = _doctor.run(url, origin, args.driver, _say)
    return 0 if ok else 1


def cmd_db_seed(args: argparse.Namespace) -> int:
    from .service.schema import SeedPlan, seed_database

    plan = SeedPlan(
        accounts=args.accounts, orders_per_account=args.orders_per_account, seed=args.seed
    )
    with selected_database(args.database_url, temporary=False) as (url, _origin):
        report = seed_database(url, plan)
    verb = "seeded" if report.created else "already seeded:"
    _say(f"{verb} {report.accounts} accounts, {report.orders} orders in {url.redacted()}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from . import _serve
    from .service.schema import seed_database

    options = _serve.ServeOptions(
        server=args.server,
        processes=args.processes,
        max_requests=args.max_requests,
        bind=args.bind,
        connect=args.connect,
        driver=args.driver,
        extra=tuple(args.extra),
    )
    _serve.command(options)  # validate before starting anything
    with selected_database(args.database_url) as (url, origin):
        seed_database(url)
        print(
            f"postfork serve: {args.server} on http://{args.bind} ({args.processes} "
            f"processes, max-requests {args.max_requests}, connect {args.connect}); "
            f"database {url.redacted()} [{origin}]",
            file=sys.stderr,
            flush=True,
        )
        return _serve.run(url, options)


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        from rich.console import Console

        from .bench.main import run_bench
        from .bench.suite import BenchOptions
    except ImportError as exc:
        raise errors.ConfigError(
            f"postfork bench needs its extras ({exc.name} is missing): "
            "pip install 'postfork[bench]'"
        ) from exc

    settings = {
        "server": args.server,
        "processes": args.processes,
        "max_requests": args.max_requests,
        "db_delay_ms": args.db_delay_ms,
        "connections": args.connections,
        "storms": not args.no_storms,
        "driver": args.driver,
        "database_url": args.database_url,
        "scenario_names": tuple(args.scenarios or ()),
    }
    for name in ("rate", "duration", "closed_duration", "storm_duration"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    options = BenchOptions.quick(**settings) if args.quick else BenchOptions(**settings)
    console = Console()
    if not console.is_terminal:  # a pipe or a file: do not squeeze the tables into 80 columns
        console = Console(width=130)
    return run_bench(options, args.json, args.plot, console)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postfork",
        description="Fork-aware MySQL pooling for uWSGI and gunicorn workers.",
    )
    parser.add_argument("--version", action="version", version=f"postfork {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = commands.add_parser("db", help="the embedded MariaDB used when no URL is given")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    start = db_commands.add_parser("start", help="start it (if not running) and print its URL")
    start.add_argument("--port", type=int, default=None, help="also listen on 127.0.0.1:PORT")
    start.set_defaults(handler=cmd_db_start)
    db_commands.add_parser("stop", help="stop it and delete its datadir").set_defaults(
        handler=cmd_db_stop
    )
    db_commands.add_parser("url", help="print its URL").set_defaults(handler=cmd_db_url)
    seed = db_commands.add_parser("seed", help="create the service's tables and data (idempotent)")
    seed.add_argument(
        "--database-url", help="default: $DATABASE_URL, else the running embedded one"
    )
    seed.add_argument("--accounts", type=_positive_int, default=1000)
    seed.add_argument("--orders-per-account", type=_positive_int, default=100)
    seed.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    seed.set_defaults(handler=cmd_db_seed)

    serve = commands.add_parser("serve", help="run the reference service")
    serve.add_argument("--server", choices=("uwsgi", "gunicorn", "dev"), default="uwsgi")
    serve.add_argument("--processes", type=_positive_int, default=4)
    serve.add_argument(
        "--max-requests",
        type=_non_negative_int,
        default=100,
        help="recycle each worker after N requests (0: never)",
    )
    serve.add_argument("--bind", default="127.0.0.1:8000", metavar="HOST:PORT")
    serve.add_argument(
        "--connect",
        choices=_config.CONNECT_MODES,
        default="warm",
        help="warm: postfork.install with warm-up (default); postfork: connect "
        "after fork only; lazy: connect on first request (the story's before); "
        "sqlalchemy: SQLAlchemy QueuePool with pool_pre_ping instead of postfork",
    )
    serve.add_argument("--driver", choices=("mysqlclient", "pymysql"), default="mysqlclient")
    serve.add_argument("--database-url", help="default: $DATABASE_URL, else an embedded MariaDB")
    serve.add_argument(
        "extra", nargs="*", help="after --: options passed to the server as they are"
    )
    serve.set_defaults(handler=cmd_serve)

    bench = commands.add_parser(
        "bench",
        help="reproduce the 1%% tail and measure the fix: every scenario side by side",
        description="Runs the reference service once per scenario (no-recycle, lazy, postfork, "
        "warm, sqlalchemy) under a real server behind a delay proxy, drives an open loop at a "
        "fixed rate and a closed loop, then the recycling-storm variants; prints the tables "
        "and the targets, writes --json and --plot.",
    )
    bench.add_argument("--server", choices=("uwsgi", "gunicorn"), default="uwsgi")
    bench.add_argument("--processes", type=_positive_int, default=4)
    bench.add_argument("--max-requests", type=_positive_int, default=100)
    bench.add_argument(
        "--db-delay-ms",
        type=_non_negative_float,
        default=1.0,
        help="one-way delay of the proxy between the service and the database (0: no proxy)",
    )
    bench.add_argument(
        "--rate", type=_positive_float, help="open loop req/s (default: 50 per process)"
    )
    bench.add_argument(
        "--duration", type=_positive_float, help="open loop seconds per scenario (default 60)"
    )
    bench.add_argument(
        "--closed-duration", type=_positive_float, help="closed loop seconds per scenario (20)"
    )
    bench.add_argument(
        "--storm-duration", type=_positive_float, help="seconds per storm variant (default 30)"
    )
    bench.add_argument("--connections", type=_positive_int, default=8, help="closed loop (8)")
    bench.add_argument(
        "--scenarios",
        type=_scenario_list,
        help="comma-separated subset of no-recycle,lazy,postfork,warm,sqlalchemy",
    )
    bench.add_argument("--no-storms", action="store_true", help="skip the recycling storms")
    bench.add_argument("--quick", action="store_true", help="short runs: about 2.5 minutes")
    bench.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    bench.add_argument("--plot", type=Path, metavar="PATH", help="write the percentile plot (PNG)")
    bench.add_argument("--driver", choices=("mysqlclient", "pymysql"), default="mysqlclient")
    bench.add_argument("--database-url", help="default: $DATABASE_URL, else an embedded MariaDB")
    bench.set_defaults(handler=cmd_bench)

    for name, handler, text in (
        ("demo", cmd_demo, "show the fork problem and the pool's answer on a real database"),
        ("doctor", cmd_doctor, "check a database and driver: connect cost, timeouts, fork safety"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument(
            "--database-url", help="mysql://user:password@host:port/db (else $DATABASE_URL)"
        )
        sub.set_defaults(handler=handler)
        if name == "doctor":
            sub.add_argument("--driver", choices=("mysqlclient", "pymysql"), default="mysqlclient")
    return parser


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def _scenario_list(text: str) -> list[str]:
    from .bench.scenarios import select

    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        select(names)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return names


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}")
    return int(text)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except errors.Error as exc:
        print(f"postfork: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("postfork: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
