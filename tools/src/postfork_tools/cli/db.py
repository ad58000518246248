"""``postfork db start|stop|url|seed``: the private MariaDB used when no URL is given."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from postfork.cli import options
from postfork.cli.output import say


def cmd_start(args: argparse.Namespace) -> int:
    if args.replicas:
        return _start_replica_set(args.replicas)
    from postfork_tools.embedded import EmbeddedMariaDB

    running = EmbeddedMariaDB.from_state()
    if running is None:
        running = EmbeddedMariaDB(port=args.port)
        running.start(detach=True)
        running.save_state()
        print(
            f"started embedded MariaDB (pid {running.pid}, datadir {running.base})", file=sys.stderr
        )
    say(running.url.render_secret())
    return 0


def _start_replica_set(replicas: int) -> int:
    """A primary and ``replicas`` replicas; prints them as the two variables an app reads."""
    from postfork_tools.replication import EmbeddedReplicaSet, describe

    running = EmbeddedReplicaSet.from_state()
    down = [server for server in (running.members if running else []) if server.pid is None]
    if down:
        print(
            f"a server of the running replica set is down (port {down[0].port}); "
            "stop it first: postfork db stop",
            file=sys.stderr,
        )
        return 2
    if running is not None and len(running.replicas) != replicas:
        print(
            f"a replica set with {len(running.replicas)} replica(s) is running; "
            "stop it first: postfork db stop",
            file=sys.stderr,
        )
        return 2
    if running is None:
        running = EmbeddedReplicaSet(replicas).start(detach=True)
        running.save_state()
        print(f"started {describe(running)} under {running.base}", file=sys.stderr)
    say(f"DATABASE_URL={running.primary_url.render_secret()}")
    say("POSTFORK_REPLICA_URLS=" + ",".join(u.render_secret() for u in running.replica_urls))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from postfork_tools.embedded import EmbeddedMariaDB
    from postfork_tools.replication import EmbeddedReplicaSet

    replica_set = EmbeddedReplicaSet.from_state()
    if replica_set is not None:
        replica_set.stop()
        EmbeddedReplicaSet.forget_state()
        print(f"stopped the replica set and removed {replica_set.base}", file=sys.stderr)

    running = EmbeddedMariaDB.from_state()
    if running is None:
        if replica_set is None:
            print("no embedded MariaDB is running", file=sys.stderr)
        EmbeddedMariaDB.forget_state()
        return 0
    running.stop()
    EmbeddedMariaDB.forget_state()
    print(f"stopped embedded MariaDB and removed {running.base}", file=sys.stderr)
    return 0


def cmd_url(args: argparse.Namespace) -> int:
    from postfork_tools.embedded import EmbeddedMariaDB

    running = EmbeddedMariaDB.from_state()
    if running is None:
        print("no embedded MariaDB is running; start one with: postfork db start", file=sys.stderr)
        return 1
    say(running.url.render_secret())
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from postfork.cli.database import selected_database
    from postfork_tools.service.schema import SeedPlan, seed_database

    plan = SeedPlan(
        accounts=args.accounts, orders_per_account=args.orders_per_account, seed=args.seed
    )
    with selected_database(args.database_url, temporary=False) as (url, _origin):
        report = seed_database(url, plan)
    verb = "seeded" if report.created else "already seeded:"
    say(f"{verb} {report.accounts} accounts, {report.orders} orders in {url.redacted()}")
    return 0


def add_parser(commands: Any) -> None:
    db = commands.add_parser("db", help="the embedded MariaDB used when no URL is given")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="start it (if not running) and print its URL")
    start.add_argument("--port", type=options.positive_int, help="also listen on 127.0.0.1:PORT")
    start.add_argument(
        "--replicas",
        type=options.positive_int,
        metavar="N",
        help="a primary and N replicas (GTID replication on loopback ports); prints "
        "DATABASE_URL= and POSTFORK_REPLICA_URLS= lines",
    )
    start.set_defaults(handler=cmd_start)
    actions.add_parser("stop", help="stop it and delete its datadir").set_defaults(handler=cmd_stop)
    actions.add_parser("url", help="print its URL").set_defaults(handler=cmd_url)
    seed = actions.add_parser("seed", help="create the service's tables and data (idempotent)")
    options.database_url(seed, temporary=False)
    seed.add_argument("--accounts", type=options.positive_int, default=1000)
    seed.add_argument("--orders-per-account", type=options.positive_int, default=100)
    seed.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    seed.set_defaults(handler=cmd_seed)
