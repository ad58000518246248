"""A SIGTERM to a running ``postfork`` command (``kill``, a CI timeout) stops everything the
command started: its private MariaDB, the delay proxy, the app server and its workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

POSTFORK = str(Path(sys.executable).parent / "postfork")


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def private_mariadbds() -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"mariadbd" in cmdline and b"postfork-mariadb-" in cmdline:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.timeout(180)
def test_sigterm_to_bench_stops_its_database_proxy_and_server(tmp_path: Path) -> None:
    servers_before = private_mariadbds()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    bench = subprocess.Popen(
        [POSTFORK, "bench", "--scenarios", "warm", "--no-storms", "--processes", "2",
         "--duration", "120", "--json", str(tmp_path / "never.json")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        started: set[int] = set()
        while time.monotonic() < deadline:  # its MariaDB, the proxy, uWSGI's master and workers
            started = descendants(bench.pid) | (private_mariadbds() - servers_before)
            if any(
                b"uwsgi" in Path(f"/proc/{p}/cmdline").read_bytes() for p in started if alive(p)
            ):
                break
            assert bench.poll() is None, bench.stderr.read().decode() if bench.stderr else ""
            time.sleep(0.2)
        else:
            pytest.fail("the bench never started uWSGI")
        time.sleep(1.0)  # the load is running
        started = descendants(bench.pid) | (private_mariadbds() - servers_before)
        bench.send_signal(signal.SIGTERM)
        _, stderr = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
    assert bench.returncode == 128 + signal.SIGTERM, stderr.decode()[-2000:]
    assert b"postfork: terminated" in stderr
    assert b"Traceback" not in stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(pid) for pid in started):
        time.sleep(0.2)
    assert not [pid for pid in started if alive(pid)]
    assert len(started) >= 4  # the database, the proxy, a master, its workers: all were seen
