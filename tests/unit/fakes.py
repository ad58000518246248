"""A fake DB-API driver for the unit tier: real socket pairs (so poll() and dup2 are real),
scripted failures, and a record of everything the pool asked for."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Mapping
from typing import Any

from postfork.drivers.aio import AsyncDriver
from postfork.drivers.base import Driver, DriverBase
from postfork.url import DatabaseURL


class FakeError(Exception):
    pass


class FakeInterfaceError(FakeError):
    pass


class FakeOperationalError(FakeError):
    pass


class FakeModule:
    Error = FakeError
    InterfaceError = FakeInterfaceError
    OperationalError = FakeOperationalError


class FakeConnection:
    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.client, self.server = socket.socketpair()
        self.in_transaction = False
        self.rollbacks = 0
        self.closed = False
        self.open = True
        self.fail_rollback = False
        self.silent = False  # the server stopped answering (no reply to anything, no close)
        self.closed_on_devnull: bool | None = None
        self._postfork_reset_pending = False  # a ROLLBACK sent, its reply not read yet

    def _postfork_finish_reset(self) -> None:
        """Read the ROLLBACK's reply: one byte from the fake server, or EOF if it went away."""
        self._postfork_reset_pending = False
        if self.client.recv(1) != b"R":
            raise FakeOperationalError(2013, "Lost connection to server during query")
        self.in_transaction = False

    def server_kills(self) -> None:
        """The server ends the session: the client's socket becomes readable (EOF)."""
        self.server.close()

    def thread_id(self) -> int:
        return self.ident


class FakeDriver(Driver):
    name = "fake"
    module = FakeModule

    def __init__(self, wait_timeout: float = 28800.0) -> None:
        self.wait_timeout = wait_timeout
        self.opened: list[FakeConnection] = []
        self.fail_next_connects: list[BaseException] = []
        self.init_sql_seen: list[tuple[str, ...]] = []
        self.connect_args_seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def connect(
        self,
        url: DatabaseURL,
        *,
        connect_timeout: float,
        autocommit: bool,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        self.connect_args_seen.append(dict(extra or {}))
        if self.fail_next_connects:
            raise self.fail_next_connects.pop(0)
        with self._lock:  # the pool connects from several threads at once
            conn = FakeConnection(len(self.opened) + 1)
            self.opened.append(conn)
        return conn

    def connect_kwargs(
        self, url: DatabaseURL, connect_timeout: float, autocommit: bool
    ) -> dict[str, Any]:
        return {"autocommit": autocommit}

    def open(self, **kwargs: Any) -> Any:
        raise AssertionError("the fake connects in connect() itself")

    def fileno(self, conn: Any) -> int:
        return int(conn.client.fileno())

    def in_transaction(self, conn: Any) -> bool:
        return bool(conn.in_transaction)

    def preload(self) -> None:
        pass

    def rollback(self, conn: Any) -> None:
        """As postfork's adapters do: send the ROLLBACK, read its reply later."""
        if conn.fail_rollback:
            raise FakeOperationalError(2013, "Lost connection to server during query")
        conn.rollbacks += 1
        if conn.server.fileno() != -1 and not conn.silent:
            conn.server.sendall(b"R")  # the server's OK arrives on the client's socket
        conn._postfork_reset_pending = True

    def close(self, conn: Any) -> None:
        # What a real driver sends on close (COM_QUIT) goes to this fd: record where it points.
        conn.closed_on_devnull = os.path.samestat(
            os.fstat(conn.client.fileno()), os.stat(os.devnull)
        )
        conn.closed = True
        conn.open = False
        conn.client.close()
        if conn.server.fileno() != -1:
            conn.server.close()

    def session_wait_timeout(self, conn: Any) -> float:
        return self.wait_timeout

    def run_init_sql(self, conn: Any, statements: tuple[str, ...]) -> None:
        self.init_sql_seen.append(statements)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeAsyncDriver(AsyncDriver):
    """The same fake sessions behind the asyncio drivers' interface: every I/O call is awaited
    (and yields to the loop once, as a real one would)."""

    name = "fake-async"
    module = FakeModule
    liveness_probe = DriverBase.liveness_probe  # the fake's socket pair is the whole truth

    def __init__(self, wait_timeout: float = 28800.0) -> None:
        self.sync = FakeDriver(wait_timeout)
        self.connect_delay = 0.0

    @property
    def opened(self) -> list[FakeConnection]:
        return self.sync.opened

    @property
    def fail_next_connects(self) -> list[BaseException]:
        return self.sync.fail_next_connects

    async def connect(
        self,
        url: DatabaseURL,
        *,
        connect_timeout: float,
        autocommit: bool,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        await asyncio.sleep(self.connect_delay)
        return self.sync.connect(
            url, connect_timeout=connect_timeout, autocommit=autocommit, extra=extra
        )

    async def open(self, **kwargs: Any) -> Any:
        raise AssertionError("the fake connects in connect() itself")

    def connect_kwargs(
        self, url: DatabaseURL, connect_timeout: float, autocommit: bool
    ) -> dict[str, Any]:
        return {}

    def transport(self, conn: Any) -> Any:
        raise AssertionError("the fake has no transport")

    def unread(self, conn: Any) -> bool:
        return False

    def fileno(self, conn: Any) -> int:
        return self.sync.fileno(conn)

    def is_open(self, conn: Any) -> bool:
        return bool(conn.open)

    def in_transaction(self, conn: Any) -> bool:
        return self.sync.in_transaction(conn)

    def encrypted(self, conn: Any) -> bool:
        return False

    async def rollback(self, conn: Any) -> None:
        self.sync.rollback(conn)

    async def finish_reset(self, conn: Any) -> None:
        conn._postfork_finish_reset()

    async def finish_reset_within(self, conn: Any, poller: Any, seconds: float) -> bool:
        deadline = asyncio.get_running_loop().time() + seconds
        while not poller.poll(0):
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.005)
        conn._postfork_finish_reset()
        return True

    async def close(self, conn: Any) -> None:
        self.sync.close(conn)

    def close_now(self, conn: Any) -> None:
        self.sync.close(conn)

    def discard_abandoned(self, conn: Any) -> None:
        self.sync.discard_abandoned(conn)

    def forget_transport(self, conn: Any) -> None:
        pass

    async def session_wait_timeout(self, conn: Any) -> float:
        return self.sync.wait_timeout

    async def run_init_sql(self, conn: Any, statements: tuple[str, ...]) -> None:
        self.sync.run_init_sql(conn, statements)

    def preload(self) -> None:
        pass
