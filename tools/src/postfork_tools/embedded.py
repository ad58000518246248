"""A private MariaDB server on a temporary datadir and unix socket.

Used when no database URL is given (``postfork db start``), and by tests that must break a
server (kill it, restart it, shrink ``wait_timeout`` or ``max_connections``) without touching
anybody else's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from postfork import environment
from postfork.drivers import connect
from postfork.errors import ConfigError, DatabaseUnavailable
from postfork.url import DatabaseURL

log = logging.getLogger("postfork.embedded")

DATABASE = "postfork"
_SERVER_OPTIONS = (
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=8M",
    "--skip-log-bin",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_unicode_ci",
)
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")


def _find(names: Sequence[str]) -> str:
    for name in names:
        found = shutil.which(name) or next(
            (f"{d}/{name}" for d in _SBIN if os.access(f"{d}/{name}", os.X_OK)), None
        )
        if found:
            return found
    raise ConfigError(
        f"cannot find {names[0]}: install MariaDB (apt-get install mariadb-server) or set "
        "DATABASE_URL to an existing server"
    )


def _user_args() -> list[str]:
    # mariadbd refuses to run as root unless told to.
    return ["--user=root"] if os.geteuid() == 0 else []


class EmbeddedMariaDB:
    """One private ``mariadbd``: ``start()``, ``url``, ``kill()``, ``stop()``.

    ``server_args`` are extra mariadbd options, e.g. ``["--wait-timeout=2"]``. With a ``port``
    it listens on ``bind_address`` too (MariaDB takes a comma-separated list); ``wrapper`` is
    an argv prefix it runs under (``ip netns exec NAME``: in a network namespace of a test's).
    """

    def __init__(
        self,
        datadir: Path | None = None,
        *,
        port: int | None = None,
        server_args: Sequence[str] = (),
        bind_address: str = "127.0.0.1",
        wrapper: Sequence[str] = (),
    ) -> None:
        self.base = Path(datadir) if datadir else Path(tempfile.mkdtemp(prefix="postfork-mariadb-"))
        self.port = port
        self.server_args = tuple(server_args)
        self.bind_address = bind_address
        self.wrapper = tuple(wrapper)
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    def _user_args(self) -> list[str]:
        return _user_args()

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def socket(self) -> Path:
        return self.base / "mysqld.sock"

    @property
    def tmpdir(self) -> Path:
        """Its own: a starting mariadbd deletes every ``#sql*`` file in its tmpdir, and in a
        shared /tmp those are the on-disk temporary tables of the other servers running."""
        return self.base / "tmp"

    @property
    def error_log(self) -> Path:
        return self.base / "error.log"

    @property
    def url(self) -> DatabaseURL:
        options: dict[str, Any] = {"unix_socket": str(self.socket)}
        return DatabaseURL(host="localhost", user="root", database=DATABASE, options=options)

    def start(self, timeout: float = 60.0, *, detach: bool = False) -> DatabaseURL:
        """Initialise the datadir if new, start mariadbd, wait until it answers; return its URL."""
        if not self.datadir.exists():
            self._install()
        self._make_tmpdir()
        self.process = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=detach,  # `postfork db start`: outlive the command
        )
        self.pid = self.process.pid
        self._wait_until_ready(timeout)
        self._create_database()
        log.info("embedded MariaDB ready at %s (pid %d)", self.socket, self.pid)
        return self.url

    def _make_tmpdir(self) -> None:
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.tmpdir.chmod(0o1777)  # as /tmp: whichever user the server runs as writes there

    def _install(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self._make_tmpdir()
        command = [
            _find(("mariadb-install-db", "mysql_install_db")),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--tmpdir={self.tmpdir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *self._user_args(),
            *_SERVER_OPTIONS,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise DatabaseUnavailable("mariadb-install-db failed: " + " | ".join(tail))

    def _command(self) -> list[str]:
        network = (
            [f"--port={self.port}", f"--bind-address={self.bind_address}"]
            if self.port
            else ["--skip-networking"]
        )
        return [
            *self.wrapper,
            _find(("mariadbd", "mysqld")),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--tmpdir={self.tmpdir}",
            f"--pid-file={self.base / 'mysqld.pid'}",
            f"--log-error={self.error_log}",
            *network,
            *self._user_args(),
            *_SERVER_OPTIONS,
            *self.server_args,
        ]

    @property
    def _root_url(self) -> DatabaseURL:
        """The server itself, before its database exists."""
        return DatabaseURL(host="localhost", user="root", options={"unix_socket": str(self.socket)})

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise DatabaseUnavailable(f"embedded mariadbd exited: {self._log_tail()}")
            try:
                connect(self._root_url, timeout=2).close()
                return
            except DatabaseUnavailable:
                if time.monotonic() > deadline:
                    self.kill()
                    raise DatabaseUnavailable(
                        f"embedded mariadbd did not answer within {timeout:g}s: {self._log_tail()}"
                    ) from None
                time.sleep(0.05)

    def _create_database(self) -> None:
        self.execute(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`")

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one statement as root (test helper: KILL, SET GLOBAL, SHOW STATUS)."""
        return self.query(sql)[1]

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """As :meth:`execute`, with the result's column names."""
        conn = connect(self._root_url, timeout=5, autocommit=True)
        try:
            cursor = conn.cursor()
            cursor.execute(sql)
            names = [column[0] for column in cursor.description or ()]
            return names, list(cursor.fetchall())
        finally:
            conn.close()

    def _log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.error_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no error log)"

    def kill(self) -> None:
        """SIGKILL the server (a crash): the datadir stays, ``start()`` brings it back."""
        self._signal(signal.SIGKILL)

    def terminate(self, timeout: float = 30.0) -> None:
        """Shut the server down cleanly, keeping the datadir."""
        self._signal(signal.SIGTERM, timeout)

    def _signal(self, signum: int, timeout: float = 30.0) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)
        self._wait_exit(timeout)
        self.pid, self.process = None, None

    def _wait_exit(self, timeout: float) -> None:
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            return
        deadline = time.monotonic() + timeout
        while self.pid is not None and _alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        """Shut down and delete the datadir."""
        self.terminate()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> EmbeddedMariaDB:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the server `postfork db start` leaves running ---------------------------------------

    def save_state(self) -> None:
        state = {"pid": self.pid, "base": str(self.base), "port": self.port}
        _state_file().parent.mkdir(parents=True, exist_ok=True)
        _state_file().write_text(json.dumps(state))

    @classmethod
    def from_state(cls) -> EmbeddedMariaDB | None:
        """The server a previous ``postfork db start`` left running, if it still runs."""
        try:
            state = json.loads(_state_file().read_text())
        except (OSError, ValueError):
            return None
        server = cls(Path(state["base"]), port=state.get("port"))
        server.pid = state.get("pid")
        if server.pid is None or not _alive(server.pid) or not server.socket.exists():
            return None
        return server

    @staticmethod
    def forget_state() -> None:
        _state_file().unlink(missing_ok=True)


def _state_file() -> Path:
    return environment.state_dir() / "embedded.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Dead but not reaped: a detached server's parent is init, which may be slow to reap (or,
    in a container, never)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
