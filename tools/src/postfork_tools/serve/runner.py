"""Run the reference service under a real server and talk to it over loopback HTTP.

Used by ``postfork bench``, the benchmarks, the soak and the end-to-end tests: the server is started
the way ``postfork serve`` starts it (same command, same environment), in its own process
group, with its output in a log file.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from postfork.observe.timing import parse_server_timing, parse_worker
from postfork.url import DatabaseURL
from postfork_tools.serve.command import (
    ServeOptions,
    command,
    remove_metrics_dir,
    server_environment,
)

T = TypeVar("T")


def from_clients(
    clients: int, client: Callable[[int], Iterable[T]], timeout: float = 300.0
) -> list[T]:
    """``client(0)`` .. ``client(clients - 1)``, each on a thread of its own, all at once:
    every item they yield (an answer, a measurement), in the order they came."""
    items: list[T] = []
    lock = threading.Lock()

    def run(number: int) -> None:
        for item in client(number):
            with lock:
                items.append(item)

    threads = [threading.Thread(target=run, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return items


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any
    elapsed: float

    @property
    def timing(self) -> dict[str, float]:
        """Server-Timing as {name: milliseconds}."""
        return parse_server_timing(self.headers["server-timing"])

    @property
    def worker(self) -> tuple[int, int]:
        parsed = parse_worker(self.headers["x-worker"])
        if parsed is None:
            raise ValueError(f"malformed X-Worker header: {self.headers['x-worker']!r}")
        return parsed


def get(port: int, path: str, method: str = "GET", timeout: float = 10.0) -> Response:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        reply = conn.getresponse()
        raw = reply.read()
        headers = {name.lower(): value for name, value in reply.getheaders()}
    finally:
        conn.close()
    if headers.get("content-type", "").startswith("application/json"):
        body: Any = json.loads(raw) if raw else None
    else:
        body = raw.decode("utf-8", "replace")  # /metrics is text
    return Response(reply.status, headers, body, time.perf_counter() - started)


@dataclass
class ServiceProcess:
    """The service under a real server, started like ``postfork serve`` starts it."""

    url: DatabaseURL
    options: ServeOptions
    env: dict[str, str] = field(default_factory=dict)
    argv: list[str] | None = None  # instead of the command `postfork serve` would run
    ready_path: str = "/healthz"  # up once this answers (with any HTTP status)
    process: subprocess.Popen[bytes] | None = None
    log_path: str = ""
    _env: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.options.bind.rpartition(":")[2])

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        fd, self.log_path = tempfile.mkstemp(prefix="postfork-e2e-", suffix=".log")
        env = self._env = {**server_environment(self.url, self.options), **self.env}
        with os.fdopen(fd, "wb") as log:  # the server keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                self.argv or command(self.options),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()[-3000:]}")
            try:
                status = get(self.port, self.ready_path, timeout=2).status
                if status == 200 or (self.ready_path != "/healthz" and status < 500):
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not up within {timeout}s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        remove_metrics_dir(self._env)

    def stop_through_main(self, timeout: float = 20.0) -> int:
        """Stop the server as its documentation says: SIGTERM to its main process only (its
        workers are its to stop), then the group, if anything is left. The exit code."""
        if self.process is None:
            raise RuntimeError("the server was not started")
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        self.stop()
        with contextlib.suppress(ProcessLookupError):  # a worker the main process left behind
            os.killpg(self.process.pid, signal.SIGKILL)
        return int(self.process.returncode)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as handle:
            return handle.read()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        os.unlink(self.log_path)
