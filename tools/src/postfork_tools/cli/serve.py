"""``postfork serve``: the reference service under uWSGI, gunicorn or a development server, or
its ASGI twin under uvicorn, gunicorn's uvicorn or ASGI worker, or hypercorn."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from postfork.cli import options
from postfork_tools.serve.command import SERVERS
from postfork_tools.service.settings import ASGI_CONNECT_MODES, CONNECT_MODES


def cmd_serve(args: argparse.Namespace) -> int:
    from postfork.cli.database import selected_database
    from postfork_tools.serve import command as serve
    from postfork_tools.service.schema import seed_database

    settings = serve.ServeOptions(
        server=args.server,
        processes=args.processes,
        max_requests=args.max_requests,
        bind=args.bind,
        connect=args.connect,
        driver=args.driver,
        extra=tuple(args.extra),
    )
    serve.command(settings)  # validate before starting anything
    with selected_database(args.database_url) as (url, origin):
        seed_database(url)
        print(
            f"postfork serve: {args.server} on http://{args.bind} ({serve.describe(settings)}, "
            f"connect {args.connect}); database {url.redacted()} [{origin}]",
            file=sys.stderr,
            flush=True,
        )
        return serve.run(url, settings)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("serve", help="run the reference service")
    options.server(parser, SERVERS)
    parser.add_argument("--bind", default="127.0.0.1:8000", metavar="HOST:PORT")
    parser.add_argument(
        "--connect",
        choices=sorted(set(CONNECT_MODES) | set(ASGI_CONNECT_MODES)),
        default="warm",
        help="warm: postfork.install with warm-up (default; ASGI: warm in the lifespan, then a "
        "warm-up request); postfork: connect after fork only (ASGI: warm in the lifespan); "
        "lazy: connect on first request; sqlalchemy: SQLAlchemy QueuePool with pool_pre_ping "
        "instead of postfork; ASGI: sqlalchemy-async[-preping], driver-pool",
    )
    options.driver(parser, asyncio=True)
    options.database_url(parser)
    parser.add_argument(
        "extra", nargs="*", help="after --: options passed to the server as they are"
    )
    parser.set_defaults(handler=cmd_serve)
