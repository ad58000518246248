"""``postfork doctor``: what a pool would see on a database, checked for real."""

from __future__ import annotations

import argparse
from typing import Any

from . import options
from .output import say


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..tools import doctor
    from ..tools.database import selected_database

    with selected_database(args.database_url) as (url, origin):
        ok = doctor.run(url, origin, args.driver, say)
    return 0 if ok else 1


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "doctor", help="check a database and driver: connect cost, timeouts, fork safety"
    )
    options.database_url(parser)
    options.driver(parser)
    parser.set_defaults(handler=cmd_doctor)
