"""The asyncio drivers (asyncmy, aiomysql) as the pool sees them: the same questions as the
DB-API drivers, with I/O that is awaited.

Both drivers are asyncio ports of PyMySQL and speak the protocol the same way, so what differs
between them is small (how to reach the transport, the protocol's buffer, the connect call);
the rest lives here once:

- A connection class per driver with PyMySQL's pipelined rollback (see ``drivers.base``): the
  ROLLBACK on return is written without waiting for its reply, which is read before the next
  command (every command goes through ``_execute_command``) or by the pool before the next
  checkout.
- Liveness without a round trip: an idle session is dead when its transport is closing, the
  protocol saw EOF or an error, bytes wait unread in its buffer (an error packet the loop has
  already read for us), or its socket is readable (one the loop has not).
- A close that never waits: COM_QUIT written, then the transport closed (asyncio flushes it
  first), so the server counts no aborted client and a cancelled task cannot interrupt it; at
  exit, with no loop running, COM_QUIT goes straight to the socket.
- The whole connect, handshake included, bounded by ``connect_timeout`` (the drivers bound only
  the TCP connect: a server that accepts and never greets would hold the task).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

from ..url import DatabaseURL
from .base import DriverBase, borrowed_socket
from .tls import ssl_context

COM_QUERY = 3
COM_QUIT_PACKET = b"\x01\x00\x00\x00\x01"  # length 1, sequence 0, COM_QUIT
_SERVER_STATUS_IN_TRANS = 0x0001
_CR_SERVER_LOST = 2013


class AsyncDriver(DriverBase):
    """An asyncio driver: its I/O methods are coroutines, run on the pool's loop."""

    asynchronous = True

    async def connect(
        self,
        url: DatabaseURL,
        *,
        connect_timeout: float,
        autocommit: bool,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """Open a connection within ``connect_timeout``. Driver errors propagate (the pool
        translates them); running out of time is the driver's "lost during the handshake"."""
        kwargs = self.connect_arguments(url, connect_timeout, autocommit, extra)
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        try:
            async with asyncio.timeout(connect_timeout):
                conn = await self.open(**kwargs)
        except TimeoutError:
            raise self.module.OperationalError(
                _CR_SERVER_LOST, f"no answer within connect_timeout={connect_timeout:g}s"
            ) from None
        if task is not None and task.cancelling() > cancels:
            # the drivers' own asyncio.wait_for (Python 3.11) swallows a cancel that arrives
            # as the TCP connect completes: the task was cancelled all the same
            await self.close(conn)
            raise asyncio.CancelledError
        refused = self.plain_text_refused(url, conn)
        if refused is not None:
            self.close_now(conn)
            raise refused
        return conn

    @abc.abstractmethod
    async def open(self, **kwargs: Any) -> Any:
        """The driver's own connect, with postfork's connection class."""

    @abc.abstractmethod
    def transport(self, conn: Any) -> asyncio.Transport | None:
        """The connection's transport (None once the driver closed it)."""

    @abc.abstractmethod
    def unread(self, conn: Any) -> bool:
        """Bytes (or EOF, or an error) wait in the driver's buffer: the server spoke."""

    def fileno(self, conn: Any) -> int:
        transport = self.transport(conn)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            raise self.module.InterfaceError(0, "connection is closed")
        return int(sock.fileno())

    def encrypted(self, conn: Any) -> bool:
        transport = self.transport(conn)
        return transport is not None and transport.get_extra_info("ssl_object") is not None

    def in_transaction(self, conn: Any) -> bool:
        return bool(conn.server_status & _SERVER_STATUS_IN_TRANS)

    def is_open(self, conn: Any) -> bool:
        transport = self.transport(conn)
        return transport is not None and not transport.is_closing()

    def liveness_probe(self, conn: Any, poller: Any) -> Callable[[], Any]:
        transport, unread, poll = self.transport(conn), self.unread, poller.poll

        def spoke() -> bool:
            return transport is None or transport.is_closing() or unread(conn) or bool(poll(0))

        return spoke

    async def rollback(self, conn: Any) -> None:
        """Send ROLLBACK; its reply is read later (see :meth:`finish_reset`)."""
        await conn.rollback()

    async def finish_reset(self, conn: Any) -> None:
        await conn._postfork_finish_reset()

    async def finish_reset_within(self, conn: Any, poller: Any, seconds: float) -> bool:
        """Read the pending ROLLBACK's reply if it arrives within ``seconds``; normally it is
        there already, and then reading it never suspends long."""
        if self.unread(conn) or poller.poll(0):
            await conn._postfork_finish_reset()
            return True
        try:  # not asyncio.wait_for: on 3.11 it can swallow the task's own cancellation
            async with asyncio.timeout(max(seconds, 0.001)):
                await conn._postfork_finish_reset()
        except TimeoutError:  # the driver closed the connection when its read was cancelled
            return False
        return True

    async def close(self, conn: Any) -> None:
        """Close cleanly without suspending: a cancellation cannot cut it in half."""
        transport = self.transport(conn)
        if transport is not None and not transport.is_closing():
            # also with a reply unread (a ROLLBACK's): the server reads COM_QUIT after it
            transport.write(COM_QUIT_PACKET)  # flushed before the transport closes
        conn.close()

    def close_now(self, conn: Any) -> None:
        """With no loop to run the transport: COM_QUIT written straight to the socket (in plain
        text only: a TLS session cannot be spoken to without its loop), then the socket shut
        down; the transport's own close is left to the process's end."""
        transport = self.transport(conn)
        if transport is None or transport.is_closing():
            return
        fd = self.fileno(conn)
        if not self.encrypted(conn):
            with contextlib.suppress(OSError):
                os.write(fd, COM_QUIT_PACKET)
        with borrowed_socket(fd) as sock, contextlib.suppress(OSError):
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)

    def discard_abandoned(self, conn: Any) -> None:
        """The driver object forgets its transport without calling the parent's loop (it
        belongs to the parent, and may be closed); the transport, collected, closes the fd,
        which points at /dev/null by now."""
        self.forget_transport(conn)

    @abc.abstractmethod
    def forget_transport(self, conn: Any) -> None:
        """Drop the driver's references to its transport so nothing it does later (``close()``,
        ``__del__``) reaches the transport's loop."""

    async def session_wait_timeout(self, conn: Any) -> float:
        async with conn.cursor() as cursor:
            await cursor.execute("SELECT @@SESSION.wait_timeout")
            row = await cursor.fetchone()
        return float(row[0])

    async def run_init_sql(self, conn: Any, statements: tuple[str, ...]) -> None:
        if not statements:
            return
        async with conn.cursor() as cursor:
            for statement in statements:
                await cursor.execute(statement)


def pipelined_connection_class(base: Any) -> Any:
    """The driver's Connection with a rollback that does not wait for the server's reply."""

    class Connection(base):  # type: ignore[misc]
        _postfork_reset_pending = False

        async def rollback(self) -> None:
            if self._postfork_reset_pending:
                return  # a ROLLBACK is on its way and nothing was sent since: nothing to undo
            await base._execute_command(self, COM_QUERY, "ROLLBACK")
            self._postfork_reset_pending = True  # the OK packet is read later

        async def _postfork_finish_reset(self) -> None:
            self._postfork_reset_pending = False
            await self._read_ok_packet()

        async def _execute_command(self, command: int, sql: Any) -> Any:
            # every command goes through here: a pending ROLLBACK reply is read first
            if self._postfork_reset_pending:
                await self._postfork_finish_reset()
            return await base._execute_command(self, command, sql)

    Connection.__module__, Connection.__qualname__ = base.__module__, base.__qualname__
    return Connection


def tls_arguments(url: DatabaseURL) -> dict[str, Any]:
    """``ssl_mode`` for both asyncio drivers: an ``ssl`` context (see ``drivers.tls``)."""
    context = ssl_context(url)
    return {} if context is None else {"ssl": context}
