"""The bench's load generator: every request's latency, in open or closed loop, loopback only.

Why not wrk: wrk 4.1 pads its latency histogram with synthetic samples (its coordinated-omission
correction), so its percentiles are not per-request figures, and it cannot say which worker
answered a request or whether that request paid a connect. This generator records, for every
request, when it was due, when it was sent and answered, and the service's ``X-Worker`` and
``Server-Timing`` headers.

- Open loop (``rate``): requests are due at fixed intervals whatever the server does, and
  latency counts from the *due* time, so time spent queueing behind a stalled server is counted
  (no coordinated omission). A thread with a precise sleep releases each request on time; the
  asyncio loop only does the I/O.
- Closed loop (``connections``): each connection sends its next request when the previous one is
  answered; this measures throughput.

It runs as its own process (``python -m postfork_tools.bench.loadgen``) so the bench's display never
shares a GIL with the clock that times requests. One HTTP/1.0 request per TCP connection, as
uWSGI's ``http-socket`` and gunicorn's sync workers serve them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from postfork.observe.timing import parse_server_timing, parse_worker
from postfork_tools.bench.lines import send_line

TRANSPORT_ERROR = 0  # status recorded when no HTTP response arrived (refused, reset, timeout)
COLUMNS = ("due", "sent", "done", "status", "pid", "number", "connect_ms", "app_ms")


@dataclass(frozen=True)
class LoadSpec:
    port: int
    duration: float  # seconds of sending
    rate: float = 0.0  # open loop: requests per second
    connections: int = 0  # closed loop: concurrent connections
    max_requests: int = 0  # 0: bounded by duration only
    accounts: int = 1000  # requests rotate over /v1/accounts/1..accounts/summary
    timeout: float = 10.0
    path: str = ""  # instead of the rotation, every request on this path

    def __post_init__(self) -> None:
        if (self.rate > 0) == (self.connections > 0):
            raise ValueError("give either rate (open loop) or connections (closed loop)")
        if not 0 < self.duration <= 3600:
            raise ValueError(f"duration must be in (0, 3600] seconds, got {self.duration}")

    @property
    def mode(self) -> str:
        return "open" if self.rate > 0 else "closed"


@dataclass
class Samples:
    """One row per request; times in seconds on the generator's monotonic clock."""

    due: list[float] = field(default_factory=list)  # open loop: scheduled; closed: = sent
    sent: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    pid: list[int] = field(default_factory=list)  # from X-Worker; 0 when absent
    number: list[int] = field(default_factory=list)  # the worker's request number
    connect_ms: list[float] = field(default_factory=list)  # Server-Timing db-connect
    app_ms: list[float] = field(default_factory=list)  # Server-Timing app

    def __len__(self) -> int:
        return len(self.due)


@dataclass
class LoadResult:
    spec: LoadSpec
    samples: Samples
    started: float  # monotonic time the run started
    wall_offset: float  # add to a monotonic time to get wall-clock (time.time()) seconds
    elapsed: float  # seconds from the first due time to the last answer


# -- one request -------------------------------------------------------------------------


def _parse(raw: bytes) -> tuple[int, int, int, float, float]:
    head, _, _ = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else TRANSPORT_ERROR
    pid = number = 0
    connect_ms = app_ms = 0.0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "x-worker":
            pid, number = parse_worker(value) or (0, 0)
        elif name == "server-timing":
            timing = parse_server_timing(value)
            connect_ms, app_ms = timing.get("db-connect", 0.0), timing.get("app", 0.0)
    return status, pid, number, connect_ms, app_ms


async def _exchange(port: int, request: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, request)
        chunks = []
        while chunk := await loop.sock_recv(sock, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


class _Recorder:
    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.samples = Samples()
        self.issued = 0

    def request(self) -> bytes:
        account = self.issued % self.spec.accounts + 1
        self.issued += 1
        path = self.spec.path or f"/v1/accounts/{account}/summary"
        return f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode()

    async def measure(self, due: float) -> None:
        request = self.request()
        sent = time.monotonic()
        try:
            raw = await asyncio.wait_for(_exchange(self.spec.port, request), self.spec.timeout)
            row = _parse(raw)
        except (OSError, TimeoutError):
            row = (TRANSPORT_ERROR, 0, 0, 0.0, 0.0)
        done = time.monotonic()
        s = self.samples
        s.due.append(due)
        s.sent.append(sent)
        s.done.append(done)
        s.status.append(row[0])
        s.pid.append(row[1])
        s.number.append(row[2])
        s.connect_ms.append(row[3])
        s.app_ms.append(row[4])


# -- the two loops -----------------------------------------------------------------------


async def _open_loop(recorder: _Recorder, started: float) -> None:
    """A thread sleeps precisely until each due time and hands the request to the loop (the
    event loop's own timers wake up to a millisecond late, which would bias every latency)."""
    spec = recorder.spec
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()
    finished = asyncio.Event()

    def launch(due: float) -> None:
        task = loop.create_task(recorder.measure(due))
        pending.add(task)
        task.add_done_callback(pending.discard)

    def schedule() -> None:
        interval = 1.0 / spec.rate
        index = 0
        while True:
            due = started + index * interval
            if due - started >= spec.duration or (spec.max_requests and index >= spec.max_requests):
                break
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            loop.call_soon_threadsafe(launch, due)
            index += 1
        loop.call_soon_threadsafe(finished.set)

    thread = threading.Thread(target=schedule, daemon=True)
    thread.start()
    await finished.wait()
    while pending:
        await asyncio.gather(*list(pending))


async def _closed_loop(recorder: _Recorder, started: float) -> None:
    spec = recorder.spec
    deadline = started + spec.duration

    async def connection() -> None:
        while time.monotonic() < deadline and not (
            spec.max_requests and recorder.issued >= spec.max_requests
        ):
            await recorder.measure(time.monotonic())

    await asyncio.gather(*(connection() for _ in range(spec.connections)))


def generate(spec: LoadSpec) -> LoadResult:
    """Run the load in this process (the bench calls :func:`run`, which uses a subprocess)."""
    recorder = _Recorder(spec)
    wall_offset = time.time() - time.monotonic()
    started = time.monotonic() + 0.01
    loop_body = _open_loop if spec.mode == "open" else _closed_loop
    asyncio.run(loop_body(recorder, started))
    elapsed = max(recorder.samples.done, default=started) - started
    return LoadResult(spec, recorder.samples, started, wall_offset, elapsed)


def run(spec: LoadSpec, on_tick: Callable[[float], None] | None = None) -> LoadResult:
    """Run the load in a child process; ``on_tick(seconds elapsed)`` while it runs."""
    fd, out_path = tempfile.mkstemp(prefix="postfork-load-", suffix=".json")
    os.close(fd)
    try:
        command = [sys.executable, "-m", "postfork_tools.bench.loadgen", "--out", out_path]
        command += ["--spec", json.dumps(asdict(spec))]
        child = subprocess.Popen(command)
        began = time.monotonic()
        while child.poll() is None:
            if on_tick is not None:
                on_tick(time.monotonic() - began)
            time.sleep(0.1)
        if child.returncode != 0:
            raise RuntimeError(f"load generator failed (exit code {child.returncode})")
        with open(out_path) as handle:
            data = json.load(handle)
    finally:
        os.unlink(out_path)
    return LoadResult(
        spec,
        Samples(**data["samples"]),
        data["started"],
        data["wall_offset"],
        data["elapsed"],
    )


# -- the generator's ceiling -------------------------------------------------------------

_NULL_RESPONSE = (
    b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
    b"X-Worker: 1/1\r\nServer-Timing: db-connect;dur=0.000, app;dur=0.000\r\n\r\n{}"
)


async def _null_server(ready: Callable[[int], None]) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(_NULL_RESPONSE)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=1024)
    ready(int(server.sockets[0].getsockname()[1]))
    async with server:
        await server.serve_forever()


def ceiling(connections: int = 8, duration: float = 2.0) -> float:
    """Requests per second the generator reaches against a server that answers instantly
    (itself a Python process, so this is a lower bound on the generator's ceiling)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "postfork_tools.bench.loadgen", "--null-server"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        result = run(LoadSpec(port=port, duration=duration, connections=connections))
    finally:
        server.kill()
        server.wait()
    return len(result.samples) / max(result.elapsed, 1e-9)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m postfork_tools.bench.loadgen")
    parser.add_argument("--spec", help="LoadSpec as JSON")
    parser.add_argument("--out", help="where to write the samples (JSON)")
    parser.add_argument("--null-server", action="store_true", help="answer every request at once")
    args = parser.parse_args(argv)
    if args.null_server:
        asyncio.run(_null_server(lambda port: send_line(f"LISTEN {port}")))
        return
    if not args.spec or not args.out:
        parser.error("--spec and --out are required")
    result = generate(LoadSpec(**json.loads(args.spec)))
    payload: dict[str, Any] = {
        "samples": asdict(result.samples),
        "started": result.started,
        "wall_offset": result.wall_offset,
        "elapsed": result.elapsed,
    }
    with open(args.out, "w") as handle:
        json.dump(payload, handle)


if __name__ == "__main__":
    main()
