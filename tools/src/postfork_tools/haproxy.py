"""Debian's HAProxy as a TCP load balancer in front of database servers, on loopback: the
address an app sees instead of the replicas themselves. Used by the topology tests, which make
it drop every connection at once (``shutdown sessions`` on its admin socket), as a balancer
does when it reloads, fails over or restarts."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from postfork.errors import ConfigError
from postfork.url import DatabaseURL
from postfork_tools.replication import free_port

_CONFIG = """\
global
    maxconn 4000
    stats socket {admin} mode 600 level admin
defaults
    mode tcp
    timeout connect 2s
    timeout client 1h
    timeout server 1h
frontend databases
    bind 127.0.0.1:{port}
    default_backend servers
backend servers
    balance roundrobin
{servers}
"""


class EmbeddedHAProxy:
    """``haproxy`` on 127.0.0.1:``port`` balancing over ``backends`` (host, port) in turn."""

    def __init__(self, backends: Sequence[tuple[str, int]], *, port: int | None = None) -> None:
        self.executable = shutil.which("haproxy") or next(
            (p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None
        )
        if self.executable is None:
            raise ConfigError("haproxy is not installed: apt-get install haproxy")
        self.backends = list(backends)
        self.port = port or free_port()
        self.base = Path(tempfile.mkdtemp(prefix="postfork-haproxy-"))
        self.admin = self.base / "admin.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, template: DatabaseURL) -> DatabaseURL:
        """``template`` (user, password, database) pointed at the balancer."""
        options = {k: v for k, v in template.options.items() if k != "unix_socket"}
        return dataclasses.replace(template, host="127.0.0.1", port=self.port, options=options)

    def start(self, timeout: float = 10.0) -> EmbeddedHAProxy:
        servers = "\n".join(
            f"    server s{index + 1} {host}:{port}"
            for index, (host, port) in enumerate(self.backends)
        )
        config = self.base / "haproxy.cfg"
        config.write_text(_CONFIG.format(admin=self.admin, port=self.port, servers=servers))
        self.process = subprocess.Popen(
            [str(self.executable), "-db", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self._listening():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"haproxy did not start on 127.0.0.1:{self.port}")
            time.sleep(0.02)
        return self

    def _listening(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
            return self.admin.exists()
        return False

    def command(self, line: str) -> str:
        """One command on the admin socket (``show sess``, ``shutdown sessions server ...``)."""
        with socket.socket(socket.AF_UNIX) as admin:
            admin.settimeout(5)
            admin.connect(str(self.admin))
            admin.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := admin.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def drop_all_connections(self) -> None:
        """Close every client connection at once (each server's sessions shut down)."""
        for index in range(len(self.backends)):
            self.command(f"shutdown sessions server servers/s{index + 1}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> EmbeddedHAProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
