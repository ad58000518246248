"""Fork-safety check: a parent with a warm pool forks children that leave in every way.

Runs as its own process (``python -m postfork.tools.forkcheck``) so that children can exit the way
real workers do, through normal interpreter shutdown, with nothing of a test runner in their
stack. Prints one JSON report. ``postfork demo``, ``postfork doctor`` and the tests use it.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from .. import environment
from ..drivers import DRIVER_NAMES, load_driver
from ..pool import Pool
from ..url import DatabaseURL, parse_url

EXIT_WAYS = ("exit", "use-and-exit", "raise", "os-exit", "gc-collect", "pool-close")
FORK_METHODS = ("os", "libc")


def _fork_function(method: str) -> Callable[[], int]:
    """``os.fork`` runs Python's at-fork hooks; libc's fork skips them, as uWSGI's C fork does."""
    if method == "os":
        return os.fork
    libc = ctypes.CDLL(None, use_errno=True)
    return lambda: int(libc.fork())


def _child(holder: list[Pool], way: str) -> None:
    """What a forked child does before it leaves; it never returns normally."""
    if way in ("use-and-exit", "raise", "os-exit"):
        with holder[0].connection() as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT CONNECTION_ID()")
            cursor.fetchall()
            if way == "raise":
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)  # the uncaught traceback below is expected
                raise RuntimeError("child raised")
    if way == "os-exit":
        os._exit(0)
    if way == "gc-collect":
        holder.clear()  # the only reference: the pool and its connections become garbage
        gc.collect()
    if way == "pool-close":
        holder[0].close()
    sys.exit(0)  # normal interpreter shutdown: atexit, module teardown, GC of everything


def _parent_sessions(pool: Pool) -> list[int]:
    """Lease every pooled connection at once and ask the server who each one is."""
    leases = [pool.connection() for _ in range(pool.max_size)]
    ids = []
    for lease in leases:
        conn = lease.__enter__()
        cursor = conn.cursor()
        cursor.execute("SELECT CONNECTION_ID()")
        ids.append(int(cursor.fetchone()[0]))
    for lease in reversed(leases):
        lease.__exit__(None, None, None)
    return sorted(ids)


def run_matrix(url: str, driver: str, method: str, ways: list[str], rounds: int) -> dict[str, Any]:
    size = 3
    holder = [Pool(url, driver=driver, min_idle=size, max_size=size)]
    holder[0].warm()
    before = _parent_sessions(holder[0])
    fork = _fork_function(method)
    exits: dict[str, list[int]] = {way: [] for way in ways}
    for way in ways:
        for _ in range(rounds):
            pid = fork()
            if pid == 0:
                _child(holder, way)
            _, status = os.waitpid(pid, 0)
            exits[way].append(os.waitstatus_to_exitcode(status))
    after = _parent_sessions(holder[0])
    stats = holder[0].stats()
    holder[0].close()
    return {
        "driver": driver,
        "fork": method,
        "children": rounds * len(ways),
        "exit_codes": exits,
        "sessions_before": before,
        "sessions_after": after,
        "sessions_unchanged": before == after,
        "parent_connects": stats["connects"],
        "parent_discards": stats["discards"],
    }


def run_naive(url: str, driver: str, method: str) -> dict[str, Any]:
    """The bug postfork prevents: a raw connection, a child that just closes or drops it."""
    adapter = load_driver(driver)
    conn = adapter.connect(parse_url(url), connect_timeout=5, autocommit=False)
    cursor = conn.cursor()
    cursor.execute("SELECT CONNECTION_ID()")
    pid = _fork_function(method)()
    if pid == 0:
        if driver == "pymysql":
            conn.close()  # PyMySQL sends COM_QUIT on close(), not on garbage collection
        sys.exit(0)  # mysqlclient sends COM_QUIT when the object is collected at shutdown
    os.waitpid(pid, 0)
    try:
        cursor.execute("SELECT 1")
        cursor.fetchall()
        error = None
    except adapter.module.Error as exc:
        error = f"{type(exc).__name__}: {exc}"
    return {"driver": driver, "fork": method, "parent_survived": error is None, "error": error}


def run_in_subprocess(url: DatabaseURL, *args: str) -> dict[str, Any]:
    """Run this module as its own process and return its report (the password stays out of argv)."""
    env = {**os.environ, environment.DATABASE_URL_VAR: url.render_secret()}
    result = subprocess.run(
        [sys.executable, "-m", "postfork.tools.forkcheck", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"fork check failed: {result.stderr.strip()[-500:]}")
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m postfork.tools.forkcheck")
    parser.add_argument("--url", help="database URL (default: $DATABASE_URL, kept out of argv)")
    parser.add_argument("--driver", choices=DRIVER_NAMES, default="mysqlclient")
    parser.add_argument("--fork", choices=FORK_METHODS, default="os")
    parser.add_argument("--ways", default=",".join(EXIT_WAYS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--naive", action="store_true", help="run the unprotected baseline")
    args = parser.parse_args(argv)
    args.url = args.url or environment.database_url()
    if not args.url:
        parser.error("no database URL: pass --url or set DATABASE_URL")
    if args.naive:
        report = run_naive(args.url, args.driver, args.fork)
    else:
        ways = [way for way in args.ways.split(",") if way]
        report = run_matrix(args.url, args.driver, args.fork, ways, args.rounds)
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
