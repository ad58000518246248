"""The ``postfork`` command: the only place that prints. Errors are one line, never a traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from . import __version__, errors
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
