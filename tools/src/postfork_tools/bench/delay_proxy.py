"""A TCP proxy that delays every chunk by a fixed one-way time: network distance on loopback.

These machines have no ``tc netem``. Each direction of each connection has a reader thread that
stamps chunks with their due time and a writer thread that sends them in order when due, so a
round trip through the proxy costs two one-way delays. It also counts the chunks the client
sent: in MySQL's request/response protocol that is the number of round trips the client made.

It can also play a silent network (a failover that moved an address, a lost NAT entry, a host
gone without a RST): told ``hold`` on its stdin it stops moving bytes in both directions and
leaves new sessions unanswered (accepted, never greeted), closing nothing; ``hold-handshakes``
lets new sessions get the server's greeting and then holds them (silence mid-handshake);
``flow`` delivers what it held, as a healed network does. Each command is acknowledged with a
line ``OK <command>``.

Run it as a process (``python -m postfork_tools.bench.delay_proxy``) so it never competes for the
GIL with the code it measures. It prints ``LISTEN host:port`` when ready, a JSON line of its
counters so far on SIGUSR1, and a last one when it gets SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from postfork.url import DatabaseURL
from postfork_tools.bench.lines import send_line

_CHUNK = 65536
_EOF = b""
HOLD_COMMANDS = ("hold", "hold-handshakes", "flow")
STOP_DRAIN = 0.25  # seconds a stop waits for clients still closing, so their last bytes count


@dataclass
class Counters:
    connections: int = 0
    client_commands: int = 0  # MySQL commands the clients sent (a statement, a ping, a quit)
    client_chunks: int = 0  # reads off client sockets: a command, or several sent together
    client_bytes: int = 0
    server_chunks: int = 0
    server_bytes: int = 0


def proxy_target(url: DatabaseURL) -> str:
    """Where a proxy for this database should connect: its unix socket, else its TCP port."""
    return f"unix:{url.unix_socket}" if url.unix_socket else f"tcp:{url.host}:{url.port}"


def proxied(url: DatabaseURL, port: int) -> DatabaseURL:
    """The same database, reached over TCP through a proxy listening on 127.0.0.1:port."""
    options = {k: v for k, v in url.options.items() if k != "unix_socket"}
    return replace(url, host="127.0.0.1", port=port, options=options)


def parse_target(text: str) -> tuple[int, str | tuple[str, int]]:
    """``unix:/path``, ``tcp:host:port`` or ``host:port`` as a socket family and address."""
    if text.startswith("unix:"):
        return socket.AF_UNIX, text[5:]
    host, _, port = text.removeprefix("tcp:").rpartition(":")
    return socket.AF_INET, (host or "127.0.0.1", int(port))


class CommandCounter:
    """The MySQL commands in one client's byte stream. A packet is 3 bytes of payload length,
    1 of sequence number, then the payload; each command opens a packet with sequence number
    0 (the handshake's answers have 1 and up). Unlike reads off the socket, which merge two
    commands sent together (a pipelined ROLLBACK and the next query), this counts each once.
    Over TLS the stream is opaque after the handshake and nothing more is counted."""

    __slots__ = ("_header", "_skip", "commands")

    def __init__(self) -> None:
        self._header = b""
        self._skip = 0
        self.commands = 0

    def feed(self, data: bytes) -> int:
        """Read ``data``; return how many commands began in it."""
        before, at = self.commands, 0
        while at < len(data):
            if self._skip:
                taken = min(self._skip, len(data) - at)
                self._skip, at = self._skip - taken, at + taken
                continue
            needed = 4 - len(self._header)
            self._header, at = self._header + data[at : at + needed], at + needed
            if len(self._header) == 4:
                self.commands += self._header[3] == 0
                self._skip, self._header = int.from_bytes(self._header[:3], "little"), b""
        return self.commands - before


class DelayProxy:
    def __init__(self, target: str, delay: float, listen: tuple[str, int] = ("127.0.0.1", 0)):
        self.family, self.address = parse_target(target)
        self.delay = delay
        self.counters = Counters()
        self._lock = threading.Lock()
        self._clients_done = threading.Condition(self._lock)
        self._open_clients = 0  # client streams not yet at their end
        self.listener = socket.create_server(listen)
        self.port = int(self.listener.getsockname()[1])
        self._flowing = threading.Event()  # cleared: every byte and every new session waits
        self._flowing.set()
        self._hold_handshakes = False

    def hold(self, *, handshakes_only: bool = False) -> None:
        """Go silent: ``handshakes_only`` holds only sessions that start from now on, after
        the server's greeting."""
        if handshakes_only:
            self._hold_handshakes = True
        else:
            self._flowing.clear()

    def flow(self) -> None:
        self._hold_handshakes = False
        self._flowing.set()

    def serve_forever(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # listener closed: shutting down
            threading.Thread(target=self._bridge, args=(client,), daemon=True).start()

    def _bridge(self, client: socket.socket) -> None:
        self._flowing.wait()  # silent: the session is accepted and never answered
        held = threading.Event() if self._hold_handshakes else None
        upstream = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            upstream.connect(self.address)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            if sock.family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self.counters.connections += 1
            self._open_clients += 1
        self._pipe(client, upstream, from_client=True, held=held)
        self._pipe(upstream, client, from_client=False, held=None)

    def _pipe(
        self,
        source: socket.socket,
        sink: socket.socket,
        *,
        from_client: bool,
        held: threading.Event | None,
    ) -> None:
        chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
        threading.Thread(target=self._read, args=(source, chunks, from_client), daemon=True).start()
        threading.Thread(target=self._write, args=(sink, chunks, held), daemon=True).start()

    def _read(
        self,
        source: socket.socket,
        chunks: queue.SimpleQueue[tuple[float, bytes]],
        from_client: bool,
    ) -> None:
        commands = CommandCounter() if from_client else None
        while True:
            try:
                data = source.recv(_CHUNK)
            except OSError:
                data = _EOF
            chunks.put((time.monotonic() + self.delay, data))
            if not data:
                if from_client:
                    with self._lock:
                        self._open_clients -= 1
                        self._clients_done.notify_all()
                return
            self._count(from_client, len(data), commands.feed(data) if commands is not None else 0)

    def wait_for_clients(self, timeout: float) -> None:
        """Until every client has closed its connection (what it sent last, a ROLLBACK or a
        COM_QUIT, is counted by then), or ``timeout``: the final counters are complete."""
        with self._clients_done:
            self._clients_done.wait_for(lambda: self._open_clients <= 0, timeout)

    def _count(self, from_client: bool, size: int, commands: int) -> None:
        """``commands``: how many began in a client's chunk."""
        with self._lock:
            if from_client:
                self.counters.client_commands += commands
                self.counters.client_chunks += 1
                self.counters.client_bytes += size
            else:
                self.counters.server_chunks += 1
                self.counters.server_bytes += size

    def _write(
        self,
        sink: socket.socket,
        chunks: queue.SimpleQueue[tuple[float, bytes]],
        held: threading.Event | None,
    ) -> None:
        """``held``: a session that started under ``hold-handshakes``: what its client sends
        waits until ``flow`` (the greeting went out; the client's answer is never delivered)."""
        while True:
            due, data = chunks.get()
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if held is not None:
                while self._hold_handshakes:
                    time.sleep(0.005)
                held = None
            self._flowing.wait()
            if not data:
                break
            try:
                sink.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


class ProxyProcess:
    """A delay proxy in its own process: ``port`` while it runs, counters from ``stop()``."""

    def __init__(self, target: str, delay_ms: float) -> None:
        command = [
            sys.executable,
            "-m",
            "postfork_tools.bench.delay_proxy",
            "--target",
            target,
            "--delay-ms",
            str(delay_ms),
        ]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline().split()
        if ready[:1] != ["LISTEN"]:
            self.process.kill()
            raise RuntimeError(f"delay proxy did not start (exit code {self.process.wait()})")
        self.port = int(ready[1].rpartition(":")[2])

    def sample(self) -> dict[str, Any]:
        """The counters so far (connections, client commands and chunks), while it runs."""
        assert self.process.stdout is not None
        self.process.send_signal(signal.SIGUSR1)
        counters: dict[str, Any] = json.loads(self.process.stdout.readline())
        return counters

    def command(self, what: str, timeout: float = 10.0) -> None:
        """``hold``, ``hold-handshakes`` or ``flow``, in effect when this returns; an error
        when the proxy does not answer within ``timeout`` (never a caller stuck on it)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(what + "\n")
        self.process.stdin.flush()
        # one answer line per command, so nothing is buffered ahead of it: select() is exact
        if not select.select([self.process.stdout], [], [], timeout)[0]:
            raise RuntimeError(f"delay proxy did not answer {what!r} within {timeout:g}s")
        answer = self.process.stdout.readline().strip()
        if answer != f"OK {what}":
            raise RuntimeError(f"delay proxy answered {answer!r} to {what!r}")

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=10)
        counters: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return counters

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m postfork_tools.bench.delay_proxy")
    parser.add_argument("--target", required=True, help="unix:/path/to.sock or tcp:host:port")
    parser.add_argument("--delay-ms", type=float, default=1.0, help="one-way delay (default 1)")
    parser.add_argument("--listen-port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.delay_ms < 0:
        parser.error("--delay-ms must be >= 0")
    proxy = DelayProxy(args.target, args.delay_ms / 1e3, ("127.0.0.1", args.listen_port))
    asked: queue.SimpleQueue[str] = queue.SimpleQueue()  # handlers only enqueue: main thread works
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: asked.put("stop"))
    signal.signal(signal.SIGUSR1, lambda *_: asked.put("sample"))
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    threading.Thread(target=_read_commands, args=(asked,), daemon=True).start()
    send_line(f"LISTEN 127.0.0.1:{proxy.port}")
    while True:
        what = asked.get()
        if what in HOLD_COMMANDS:
            if what == "flow":
                proxy.flow()
            else:
                proxy.hold(handshakes_only=what == "hold-handshakes")
            send_line(f"OK {what}")
            continue
        if what not in ("sample", "stop"):
            send_line(f"ERROR unknown command {what!r}")
            continue
        if what == "stop":
            proxy.wait_for_clients(STOP_DRAIN)
        with proxy._lock:
            line = json.dumps(asdict(proxy.counters))
        send_line(line)  # the counters so far (a sample), or the last ones
        if what == "stop":
            break
    proxy.close()
    sys.exit(0)


def _read_commands(asked: queue.SimpleQueue[str]) -> None:
    for line in sys.stdin:
        if line.strip():
            asked.put(line.strip())


if __name__ == "__main__":
    main()
