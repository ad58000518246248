"""What an ASGI server's own request handling costs a fresh worker's first request, and what
``postfork.server_warmup`` leaves of it.

    .venv/bin/python benchmarks/server_warmup.py --processes 15

Each sample is a fresh Python process that imports the server as a worker would (uvicorn's
h11 protocol; gunicorn's ASGI worker with its configuration and log), then serves 12 requests
through asyncio's server on a listening loopback socket (as the servers serve) with the
server's protocol class, answered by a trivial app: the first
request's time against the median of the 6th to 12th. ``warm`` runs
``postfork.server_warmup.warm_asgi_server()`` first, as the lifespan does before a worker
accepts. No database: this is the server's code alone (parser, scope, response, asyncio's
transport). Prints the median over the processes of each variant.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import asyncio, json, statistics, sys, time
from postfork import server_warmup
from postfork.servers import gunicorn as gunicorn_server

server, warm = sys.argv[1], sys.argv[2] == "warm"
if server == "uvicorn":
    import uvicorn.protocols.http.h11_impl  # what uvicorn's configuration imports
else:
    from gunicorn.config import Config
    from gunicorn.glogging import Logger
    from gunicorn.workers.gasgi import ASGIWorker

    worker = ASGIWorker.__new__(ASGIWorker)  # as the arbiter made it
    worker.cfg = Config()
    worker.log = Logger(worker.cfg)
    gunicorn_server._worker = worker


async def main():
    loop = asyncio.get_running_loop()
    if warm:
        assert await server_warmup.warm_asgi_server() is not None
    _, factory = server_warmup._asgi_protocol_factory(loop)
    # served as the servers serve: asyncio's server accepting on a listening socket
    server = await loop.create_server(factory, "127.0.0.1", 0)
    address = server.sockets[0].getsockname()
    times = []
    for _ in range(12):
        started = time.perf_counter()
        await server_warmup._exchange(loop, address)
        times.append((time.perf_counter() - started) * 1000)
    server.close()
    await server.wait_closed()
    print(json.dumps({"first": times[0], "steady": statistics.median(times[5:])}))


asyncio.run(main())
"""


def sample(server: str, variant: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, server, variant], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=15, help="fresh processes per variant")
    args = parser.parse_args()
    print(f"{'server':10} {'variant':6} {'first ms':>9} {'steady ms':>10} {'first/steady':>13}")
    for server in ("uvicorn", "gunicorn"):
        for variant in ("cold", "warm"):
            samples = [sample(server, variant) for _ in range(args.processes)]
            first = statistics.median(s["first"] for s in samples)
            steady = statistics.median(s["steady"] for s in samples)
            ratio = statistics.median(s["first"] / s["steady"] for s in samples)
            print(f"{server:10} {variant:6} {first:9.2f} {steady:10.2f} {ratio:12.2f}x")


if __name__ == "__main__":
    main()
