"""The ``postfork`` command: parsing, logging set-up and the one place errors become one line
on stderr (never a traceback, never a password). Each command lives in its own module:
``doctor`` here; ``db``, ``serve``, ``bench`` and ``demo`` in postfork-tools, found through the
``postfork.commands`` entry points (without it, they say how to get them)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from .. import __version__, errors
from . import doctor

EXIT_ERROR = 2
COMMAND_GROUP = "postfork.commands"  # entry points: modules with add_parser(subparsers)
TOOL_COMMANDS = {
    "db": "start, stop or seed a private MariaDB",
    "serve": "run the reference service under uWSGI, gunicorn or an ASGI server",
    "bench": "the 1% tail of recycled workers, reproduced and measured",
    "demo": "the fork problem and the fix, on your database",
}


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
    plugins = _tool_commands()
    for name, summary in TOOL_COMMANDS.items():
        if name in plugins:
            plugins[name].add_parser(commands)
        else:
            _not_installed(commands, name, summary)
    doctor.add_parser(commands)
    return parser


def _tool_commands() -> dict[str, ModuleType]:
    return {point.name: point.load() for point in entry_points(group=COMMAND_GROUP)}


def _not_installed(commands: Any, name: str, summary: str) -> None:
    """A command of postfork-tools that is not installed: listed, and it says how to get it."""

    def missing(args: argparse.Namespace) -> int:
        raise errors.ConfigError(
            f"postfork {name} comes with postfork-tools: pip install postfork-tools"
        )

    help_text = f"{summary} (postfork-tools)".replace("%", "%%")  # argparse formats help
    # whatever follows is the missing command's (no option of its own: "\0" starts none)
    command = commands.add_parser(name, help=help_text, add_help=False, prefix_chars="\0")
    command.add_argument("rest", nargs="*")
    command.set_defaults(handler=missing)


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
