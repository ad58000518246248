"""``postfork demo``: the fork problem and the pool's answer, on a real database."""

from __future__ import annotations

import argparse
from typing import Any

from postfork.cli import options
from postfork.cli.output import say


def cmd_demo(args: argparse.Namespace) -> int:
    from postfork.cli.database import selected_database
    from postfork_tools import demo

    with selected_database(args.database_url) as (url, origin):
        ok = demo.run(url, origin, say)
    return 0 if ok else 1


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "demo", help="show the fork problem and the pool's answer on a real database"
    )
    options.database_url(parser)
    parser.set_defaults(handler=cmd_demo)
