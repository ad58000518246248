"""What the observability middleware costs per request, in process (no server, no network).

A trivial WSGI app is called directly, bare and wrapped, in interleaved rounds; the figure is
(wrapped - bare) per request, median over the rounds. The access log goes to a real file
through ``logging`` (as a server's log would); metrics use prometheus_client's multiprocess
files in a temporary directory and a real Pool's counters (its database is never queried).

    .venv/bin/python benchmarks/middleware_overhead.py [--requests 20000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="postfork-bench-m-"))

from postfork import Pool
from postfork.wsgi import (
    MetricsEndpoint,
    ProfileSettings,
    ProfilingMiddleware,
    ServiceMetrics,
    TimingMiddleware,
)

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]


def variants(pool: Pool) -> dict[str, App]:
    metrics = ServiceMetrics(pool)
    with_metrics = TimingMiddleware(MetricsEndpoint(app, metrics), access_log_format="logfmt")
    with_metrics.observers.append(metrics.observe)
    return {
        "bare app": app,
        "timing, access log off": TimingMiddleware(app, access_log_format="off"),
        "timing + logfmt access log": TimingMiddleware(app, access_log_format="logfmt"),
        "timing + JSON access log": TimingMiddleware(app, access_log_format="json"),
        "timing + logfmt + metrics": with_metrics,
        "profiling on, request not sampled (every=1000000)": ProfilingMiddleware(
            app, ProfileSettings(every=1_000_000)
        ),
    }


def run(target: App, requests: int) -> float:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/accounts/7/summary", "QUERY_STRING": ""}

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> None:
        pass

    started = time.perf_counter()
    for _ in range(requests):
        body = target(dict(environ), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.perf_counter() - started) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default="mysql://root@127.0.0.1:3306/test")
    parser.add_argument("--json")
    args = parser.parse_args()
    fd, log_path = tempfile.mkstemp(prefix="postfork-access-", suffix=".log")
    os.close(fd)
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("postfork.access").addHandler(handler)
    logging.getLogger("postfork.access").setLevel(logging.INFO)
    logging.getLogger("postfork.access").propagate = False
    pool = Pool(args.database_url, min_idle=0)
    targets = variants(pool)
    seconds: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(args.rounds):
        for name, target in targets.items():
            seconds[name].append(run(target, args.requests))
    bare = statistics.median(seconds["bare app"])
    results = {
        name: {
            "us_per_request": statistics.median(values) * 1e6,
            "overhead_us": (statistics.median(values) - bare) * 1e6,
        }
        for name, values in seconds.items()
    }
    for name, row in results.items():
        print(f"{name:<52} {row['us_per_request']:7.2f} us/request  +{row['overhead_us']:6.2f} us")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    os.unlink(log_path)


if __name__ == "__main__":
    main()
