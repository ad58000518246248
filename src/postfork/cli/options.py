"""Options shared by several commands, each defined once: the database URL, the driver, the
server and its recycling, and argparse types built from ``postfork.validate``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from ..drivers import ASYNC_DRIVER_NAMES, DRIVER_NAMES
from ..validate import (
    NON_NEGATIVE_INTEGER,
    NON_NEGATIVE_NUMBER,
    POSITIVE_INTEGER,
    POSITIVE_NUMBER,
    Number,
)


def _argument_type(kind: Number, convert: Callable[[float], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return convert(kind.parse(text))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = kind.description  # argparse names the type in some messages
    return parse


positive_int = _argument_type(POSITIVE_INTEGER, int)
whole_number = _argument_type(NON_NEGATIVE_INTEGER, int)
positive_float = _argument_type(POSITIVE_NUMBER, float)
non_negative_float = _argument_type(NON_NEGATIVE_NUMBER, float)


def database_url(parser: argparse.ArgumentParser, *, temporary: bool = True) -> None:
    """``--database-url``; without it, commands choose as ``cli.database`` does."""
    fallback = ", else a temporary private MariaDB" if temporary else ""
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="mysql://user:password@host:port/db; default: $DATABASE_URL, else the MariaDB "
        f"`postfork db start` left running{fallback}",
    )


def driver(parser: argparse.ArgumentParser, *, asyncio: bool = False) -> None:
    """``--driver``; with ``asyncio``, also the asyncio drivers (the default then depends on
    the server: mysqlclient under a WSGI one, asyncmy under an ASGI one)."""
    if not asyncio:
        parser.add_argument("--driver", choices=DRIVER_NAMES, default="mysqlclient")
        return
    parser.add_argument(
        "--driver",
        choices=DRIVER_NAMES + ASYNC_DRIVER_NAMES,
        default=None,
        help="default: mysqlclient under uwsgi and gunicorn, asyncmy under the ASGI servers",
    )


def server(
    parser: argparse.ArgumentParser, choices: Sequence[str], *, max_requests_minimum: int = 0
) -> None:
    """``--server``, ``--processes`` and ``--max-requests``."""
    parser.add_argument("--server", choices=choices, default=choices[0])
    parser.add_argument("--processes", type=positive_int, default=4)
    parser.add_argument(
        "--max-requests",
        type=positive_int if max_requests_minimum else whole_number,
        default=100,
        help="recycle each worker after N requests"
        + ("" if max_requests_minimum else " (0: never)"),
    )
