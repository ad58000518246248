"""Instructions per operation on the hot paths, counted by callgrind: repeatable whatever else
this shared machine is doing, so two source trees compare exactly (a change's before and after).

Paths, each on a real warm connection to the database (no query: the pool's own work):

- ``checkout``: ``with pool.connection(): pass``, nobody listening to the pool's events
- ``checkout+timing``: the same with the timing middleware's checkout/checkin listeners
- ``timing``: one request through ``TimingMiddleware`` (access log off), an app that does nothing
- ``timing+checkout``: the same, the app checking out one connection (what a request pays for
  timing and pool together)
- ``metrics``: one request through timing + ``ServiceMetrics`` + ``/metrics``, logfmt access
  log to /dev/null, an app that checks out one connection

Each figure is (instructions for N2 operations - for N1) / (N2 - N1): start-up cancels out.

    .venv/bin/python benchmarks/hot_paths.py [--tree SRC_DIR ...] [--json PATH]

``--tree`` defaults to this checkout's ``src``; give an older checkout's ``src`` too (for
instance from ``git worktree add /tmp/before HEAD~1``) to compare. Needs valgrind.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PATHS = ("checkout", "checkout+timing", "timing", "timing+checkout", "metrics")
URL = "mysql://root@localhost/test?unix_socket=/run/mysqld/mysqld.sock"
SHORT, LONG = 1000, 6000


def _import(new: str, old: str) -> Any:
    """A name from the current layout, or from the flat one before it (to compare trees)."""
    module, _, name = new.rpartition(".")
    try:
        return getattr(__import__(module, fromlist=[name]), name)
    except ImportError:
        module, _, name = old.rpartition(".")
        return getattr(__import__(module, fromlist=[name]), name)


def _app(pool: Any) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if pool is not None:
            with pool.connection():
                pass
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]

    return app


def _through(target: Any, count: int) -> None:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/accounts/7/summary", "QUERY_STRING": ""}
    for _ in range(count):
        body = target(dict(environ), lambda status, headers, *exc: None)
        for _chunk in body:
            pass
        body.close()


def run_path(path: str, count: int, url: str) -> None:
    """The measured loop (runs under callgrind, in the tree PYTHONPATH selects)."""
    import logging

    from postfork import Pool

    pool = Pool(url, min_idle=1, max_size=1)
    pool.warm()
    timing_middleware = _import(
        "postfork.wsgi.TimingMiddleware", "postfork.middleware.TimingMiddleware"
    )
    if path.startswith("checkout"):
        if path == "checkout+timing":
            timing_middleware(_app(None))  # registers its listeners (old tree: always reports)
        for _ in range(count):
            with pool.connection():
                pass
    elif path.startswith("timing"):
        app = _app(pool if path == "timing+checkout" else None)
        _through(timing_middleware(app, access_log_format="off"), count)
    else:
        access = logging.getLogger("postfork.access")
        access.addHandler(logging.FileHandler(os.devnull))
        access.setLevel(logging.INFO)
        access.propagate = False
        metrics = _import("postfork.wsgi.ServiceMetrics", "postfork.metrics.ServiceMetrics")(pool)
        endpoint = _import("postfork.wsgi.MetricsEndpoint", "postfork.metrics.MetricsEndpoint")
        target = timing_middleware(endpoint(_app(pool), metrics), access_log_format="logfmt")
        target.observers.append(metrics.observe)
        _through(target, count)


def instructions(tree: str, path: str, count: int, url: str) -> int:
    env = {**os.environ, "PYTHONPATH": tree}
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="postfork-hot-"))
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, __file__, "--run", path, str(count), "--database-url", url,
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run failed for {tree} {path}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", help="a src directory (repeatable)")
    parser.add_argument("--database-url", default=URL)
    parser.add_argument("--json")
    parser.add_argument("--run", nargs=2, metavar=("PATH", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_path(args.run[0], int(args.run[1]), args.database_url)
        return
    trees = args.tree or [str(Path(__file__).resolve().parents[1] / "src")]
    results: dict[str, dict[str, int]] = {}
    for tree in trees:
        results[tree] = {}
        for path in PATHS:
            short = instructions(tree, path, SHORT, args.database_url)
            long = instructions(tree, path, LONG, args.database_url)
            results[tree][path] = (long - short) // (LONG - SHORT)
            print(f"{tree}  {path:<16} {results[tree][path]:>8,} instructions", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
