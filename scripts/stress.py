"""The timing-sensitive tests, run again and again beside CPU hogs: a busy machine, as CI
runners and production hosts are. A race that shows once here is a bug to fix, never a test
to retry (make test-stress; the hogs always stop, whatever happens).

    python scripts/stress.py [--rounds 3] [--hogs 2] [pytest paths or -k ...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# where races showed before: recycling, respawns, exits, deadlines, silence, topology
DEFAULT_TESTS = (
    "tests/e2e/test_fast_exit.py",
    "tests/e2e/test_respawn.py",
    "tests/e2e/test_recycling.py",
    "tests/e2e/test_killed_connections.py",
    "tests/e2e/test_silent_database.py",
    "tests/e2e/test_worker_signals.py",
    "tests/e2e/test_topology_http.py",
    "tests/integration/test_topology.py",
    "tests/integration/test_deadline.py",
    "tests/unit/test_fork_listeners.py",
)


def hog() -> None:
    """A busy loop at normal priority: it competes for the cores as other work would."""
    while True:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of the tests (default 3)")
    parser.add_argument(
        "--hogs", type=int, default=os.cpu_count() or 2, help="busy loops (default: one a core)"
    )
    options, tests = parser.parse_known_args(argv)
    if options.rounds < 1 or options.hogs < 0:
        parser.error("--rounds must be at least 1 and --hogs at least 0")
    hogs = [multiprocessing.Process(target=hog, daemon=True) for _ in range(options.hogs)]
    failed: list[int] = []
    started = time.monotonic()
    try:
        for process in hogs:
            process.start()
        for round_number in range(1, options.rounds + 1):
            print(f"stress: round {round_number}/{options.rounds}, {options.hogs} hog(s)")
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            done = subprocess.run([*command, *(tests or DEFAULT_TESTS)], cwd=ROOT, check=False)
            if done.returncode != 0:
                failed.append(round_number)
    finally:
        for process in hogs:
            process.kill()
            process.join(5)
    minutes = (time.monotonic() - started) / 60
    verdict = f"failed in round(s) {failed}" if failed else "every round green"
    print(f"stress: {options.rounds} round(s) in {minutes:.1f} min: {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
