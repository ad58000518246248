"""The ``postfork`` command: parsing, logging set-up and the one place errors become one line
on stderr (never a traceback, never a password). Each command lives in its own module."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from .. import __version__, errors
from . import bench, db, demo, doctor, serve

EXIT_ERROR = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is: it unwinds like Ctrl-C."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postfork",
        description="Fork-aware MySQL pooling for uWSGI and gunicorn workers.",
    )
    parser.add_argument("--version", action="version", version=f"postfork {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (db, serve, bench, demo, doctor):
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    _unwind_on_sigterm()
    try:
        return handler(args)
    except errors.Error as exc:
        print(f"postfork: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Terminated:
        print("postfork: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("postfork: interrupted", file=sys.stderr)
        return 130


def _unwind_on_sigterm() -> None:
    """A SIGTERM (``kill``, a CI timeout) would end Python without running a single ``finally``:
    the private MariaDB, the delay proxy and the app server a command started would outlive it.
    Raised as an exception instead, every context manager stops what it started. (``serve``
    replaces this with its own handler, which forwards the signal to the server.)"""

    def terminate(signum: int, frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)


if __name__ == "__main__":
    sys.exit(main())
