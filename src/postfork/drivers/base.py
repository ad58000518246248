"""What the pool needs from a driver, and the mechanisms shared by every adapter.

An adapter only answers driver-specific questions (how to connect, which fd, is a transaction
open); abandoning after fork, disconnect detection and error translation live here, once.
:class:`DriverBase` holds every question answered without I/O, for the DB-API drivers
(:class:`Driver`: mysqlclient, PyMySQL) and the asyncio drivers (``drivers.aio.AsyncDriver``:
asyncmy, aiomysql) alike; the two subclasses add the same I/O methods, blocking or awaitable.

Both adapters hand out their driver's own Connection class, subclassed for one thing: a
``rollback()`` that sends ROLLBACK without waiting for the reply. The reply is read before the
connection sends anything else (every command goes through a method that reads it first), and
the pool reads it before it hands the connection out again: a rollback on return (by the pool,
SQLAlchemy or Django) costs the request no round trip, and the server still rolls back at once.
A second rollback while one is on its way sends nothing (SQLAlchemy's ORM rolls back twice as a
Session closes: the session's transaction, then the pool's reset on return).
"""

from __future__ import annotations

import abc
import contextlib
import functools
import logging
import math
import operator
import os
import select
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..errors import DatabaseUnavailable
from ..url import DatabaseURL
from .tls import tls_failure_reason

log = logging.getLogger("postfork.driver")

# Client and server error codes that mean "this connection is unusable": the pool discards it.
DISCONNECT_CODES = frozenset(
    {
        1053,  # ER_SERVER_SHUTDOWN
        1927,  # ER_CONNECTION_KILLED (MariaDB)
        2006,  # CR_SERVER_GONE_ERROR
        2013,  # CR_SERVER_LOST
        2014,  # CR_COMMANDS_OUT_OF_SYNC: the protocol state is unknown
        2026,  # CR_SSL_CONNECTION_ERROR
        2045,  # CR_CONN_UNKNOW_PROTOCOL
        2055,  # CR_SERVER_LOST_EXTENDED
        4031,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8: closed at wait_timeout)
    }
)

# Why a connect failed, in the words an operator needs; the server's own text follows.
_CONNECT_REASONS = {
    1040: "too many connections (the server's max_connections is reached)",
    1044: "access denied to the database",
    1045: "access denied (wrong user or password)",
    1698: "access denied (wrong user or password)",  # MariaDB: a user with no password given
    1049: "unknown database",
    1130: "this host is not allowed to connect",
    1203: "the user has too many connections (max_user_connections)",
    2002: "connection refused (no server on that socket or port)",
    2003: "connection refused (no server on that host and port)",
    2005: "unknown host",
    2013: "timed out or lost during the handshake",
}

_ENCRYPTED_MODES = ("required", "verify_ca", "verify_identity")
POLL_DEAD = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | select.POLLNVAL
WAIT_TIMEOUT_QUERY = "SELECT @@SESSION.wait_timeout"
_DEVNULL_FLAGS = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)


class DriverBase(abc.ABC):
    """One driver as the pool sees it, without I/O. Subclasses are small; shared logic stays
    here."""

    name: str
    module: Any  # the driver's module (MySQLdb, pymysql, asyncmy, aiomysql)
    asynchronous = False  # its I/O methods are coroutines (drivers.aio.AsyncDriver)
    # libmysqlclient/libmariadb take connect/read/write timeouts in whole seconds
    whole_second_timeouts = False

    def encrypted(self, conn: Any) -> bool:
        """Whether the session runs over TLS (asked of the client library, no round trip);
        a driver that cannot tell says no, so ``ssl_mode=required`` refuses rather than trusts."""
        return False

    def plain_text_refused(self, url: DatabaseURL, conn: Any) -> DatabaseUnavailable | None:
        """The error for a session that came up in plain text where ``ssl_mode`` demands TLS
        (libmariadb 3.3, PyMySQL and its asyncio ports all carry on in plain text when the
        server offers none); the caller closes it before a single query is sent."""
        if url.ssl_mode not in _ENCRYPTED_MODES or self.encrypted(conn):
            return None
        return DatabaseUnavailable(
            f"cannot connect to MySQL at {url.target}: TLS: the server does not offer TLS "
            f"(ssl_mode={url.ssl_mode}); the session was closed before any query"
        )

    def connect_arguments(
        self,
        url: DatabaseURL,
        connect_timeout: float,
        autocommit: bool,
        extra: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """The keywords for the driver's connect call; ``extra`` are driver connect arguments
        that override the URL's (``client_flag``, ``conv``...)."""
        kwargs = self.connect_kwargs(url, connect_timeout, autocommit)
        if extra and any(key.startswith("ssl") for key in extra):
            # TLS given as driver arguments (an ORM's own ssl dict) replaces the URL's, whole
            kwargs = {key: value for key, value in kwargs.items() if not key.startswith("ssl")}
        return {**kwargs, **(extra or {})}

    @abc.abstractmethod
    def connect_kwargs(
        self, url: DatabaseURL, connect_timeout: float, autocommit: bool
    ) -> dict[str, Any]:
        """The URL and settings as this driver's ``connect()`` keywords."""

    @abc.abstractmethod
    def fileno(self, conn: Any) -> int:
        """The connection's socket file descriptor."""

    @abc.abstractmethod
    def in_transaction(self, conn: Any) -> bool:
        """Whether the server reports an open transaction, without a round trip when possible."""

    @abc.abstractmethod
    def preload(self) -> None:
        """Import lazily imported modules and initialise the client library now (in a master)."""

    def transaction_probe(self, conn: Any) -> Callable[[], bool]:
        """A callable answering ``in_transaction(conn)``, built once per connection."""
        return functools.partial(self.in_transaction, conn)

    def liveness_probe(self, conn: Any, poller: Any) -> Callable[[], Any]:
        """A callable, built once per connection, that is truthy when the server spoke on an
        idle session: it closed it or sent an error (KILL, shutdown, timeout). Zero round
        trips: ``poller`` (a ``select.poll`` on its fd) finds the socket readable only then
        (a C call, asked at every checkout)."""
        return functools.partial(poller.poll, 0)

    # is_open(conn): false once the caller closed the connection (both DB-API drivers keep an
    # ``open`` flag; truthy, not always a bool). Asked at every return: a C attribute getter.
    is_open: Callable[[Any], Any] = operator.attrgetter("open")

    def connection_id(self, conn: Any) -> int:
        return int(conn.thread_id())

    # reset_pending(conn): whether a ROLLBACK was sent on ``conn`` and its reply is not read
    # yet. Asked twice per checkout: a C attribute getter, no Python frame (every adapter's
    # connection class has the flag, see ``rollback()``).
    reset_pending: Callable[[Any], bool] = operator.attrgetter("_postfork_reset_pending")

    def error_code(self, exc: BaseException) -> int | None:
        """The MySQL error code of a driver error (every driver puts it in ``args[0]``)."""
        args = getattr(exc, "args", ())
        return args[0] if args and isinstance(args[0], int) else None

    def is_driver_error(self, exc: BaseException) -> bool:
        return isinstance(exc, self.module.Error)

    def is_disconnect(self, exc: BaseException) -> bool:
        """True when ``exc`` leaves the connection unusable, so it must not go back to the pool."""
        if isinstance(exc, self.module.InterfaceError):
            return True  # "connection already closed" and friends
        return isinstance(exc, self.module.OperationalError) and self.error_code(exc) in (
            DISCONNECT_CODES
        )

    def abandon(self, conn: Any, fd: int) -> None:
        """Make ``conn`` harmless in a forked child: its fd now points at /dev/null.

        Closing or collecting the driver object afterwards would otherwise send COM_QUIT (and a
        TLS close-notify) on the socket the parent still uses, killing the parent's session.
        """
        point_fd_at_devnull(fd)

    @abc.abstractmethod
    def discard_abandoned(self, conn: Any) -> None:
        """Release an abandoned connection's memory and fd; anything it sends goes to /dev/null."""

    @abc.abstractmethod
    def close_now(self, conn: Any) -> None:
        """Close a connection this process opened, without waiting for anything (at exit,
        with no event loop running): COM_QUIT where it can be sent at once, so the server
        does not count the session aborted."""


class Driver(DriverBase):
    """A DB-API driver (mysqlclient, PyMySQL): its I/O blocks the calling thread."""

    def connect(
        self,
        url: DatabaseURL,
        *,
        connect_timeout: float,
        autocommit: bool,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """Open a connection. Driver errors propagate (the pool translates them)."""
        conn = self.open(**self.connect_arguments(url, connect_timeout, autocommit, extra))
        refused = self.plain_text_refused(url, conn)
        if refused is not None:
            self.close(conn)
            raise refused
        return conn

    @abc.abstractmethod
    def open(self, **kwargs: Any) -> Any:
        """The driver's own connect call."""

    def rollback(self, conn: Any) -> None:
        """Roll back; with postfork's adapters the ROLLBACK is sent and its reply is read
        later (see :meth:`finish_reset`): returning a connection costs no round trip."""
        conn.rollback()

    # finish_reset(conn): read the reply of the pending ROLLBACK (normally arrived long ago);
    # raises the driver's error if the server failed it or went away. A C method caller.
    finish_reset: Callable[[Any], None] = operator.methodcaller("_postfork_finish_reset")

    def finish_reset_within(self, conn: Any, poller: Any, seconds: float) -> bool:
        """Read the pending ROLLBACK's reply if it arrives within ``seconds`` (normally it is
        there already); False if it did not. The driver's own read has no timeout, and a
        server gone silent since would hold it forever."""
        if not poller.poll(0) and not poller.poll(max(1, int(seconds * 1000))):
            return False
        self.finish_reset(conn)
        return True

    def close(self, conn: Any) -> None:
        """Close cleanly (sends COM_QUIT): only for connections this process opened."""
        conn.close()

    def close_now(self, conn: Any) -> None:
        self.close(conn)

    def session_wait_timeout(self, conn: Any) -> float:
        cursor = conn.cursor()
        try:
            cursor.execute(WAIT_TIMEOUT_QUERY)
            row = cursor.fetchone()
        finally:
            cursor.close()
        return float(row[0])

    def run_init_sql(self, conn: Any, statements: tuple[str, ...]) -> None:
        cursor = conn.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            cursor.close()

    def discard_abandoned(self, conn: Any) -> None:
        try:
            self.close(conn)
        except Exception as exc:  # the driver may complain about the fd it no longer owns
            log.debug("closing an abandoned %s connection raised %r (harmless)", self.name, exc)


@contextlib.contextmanager
def borrowed_socket(fd: int) -> Iterator[socket.socket | None]:
    """A socket object on a duplicate of a driver's fd (None if it is gone): options set and a
    shutdown done through it act on the driver's socket, and closing it closes only the copy,
    so no fd number is ever freed under the driver."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        yield None
        return
    try:
        yield sock
    finally:
        sock.close()


def point_fd_at_devnull(fd: int) -> None:
    """Replace ``fd`` with /dev/null in this process only; the parent's socket is untouched."""
    devnull = os.open(os.devnull, _DEVNULL_FLAGS)
    try:
        os.dup2(devnull, fd, inheritable=False)
    finally:
        os.close(devnull)


def pymysql_family_kwargs(
    url: DatabaseURL, connect_timeout: float, autocommit: bool, *, database_key: str = "database"
) -> dict[str, Any]:
    """The connect keywords PyMySQL and its asyncio ports (asyncmy, aiomysql) share; each adapter
    adds its timeouts and TLS (aiomysql still names the schema ``db``)."""
    kwargs: dict[str, Any] = {
        "user": url.user,
        "password": url.password,
        "connect_timeout": connect_timeout,
        "autocommit": autocommit,
        "charset": url.options.get("charset", "utf8mb4"),
    }
    if url.unix_socket:
        kwargs["unix_socket"] = url.unix_socket
    else:
        kwargs["host"], kwargs["port"] = url.host, url.port
    if url.database:
        kwargs[database_key] = url.database
    return kwargs


def connect_timeout_seconds(timeout: float) -> int:
    """libmysqlclient takes whole seconds; round up so a short timeout never becomes 0 (none)."""
    return max(1, math.ceil(timeout))


def translate_connect_error(
    driver: DriverBase, exc: BaseException, url: DatabaseURL, *, stage: str = "connect"
) -> DatabaseUnavailable:
    """The one boundary where a driver's connect failure becomes postfork's error."""
    code = driver.error_code(exc)
    server_text = _redact(_server_text(exc), url.password)
    tls_reason = tls_failure_reason(server_text, url) if url.ssl_mode != "disabled" else None
    reason = tls_reason or _CONNECT_REASONS.get(code or -1, f"{stage} failed")
    where = f"{url.target} as {url.user!r}" + (
        f" (database {url.database!r})" if url.database else ""
    )
    detail = f"; server said: {server_text}" if server_text else ""
    code_text = f" [MySQL error {code}]" if code else ""
    message = f"cannot connect to MySQL at {where}: {reason}{code_text}{detail}"
    return DatabaseUnavailable(message, code=code)


def describe_error(driver: DriverBase, exc: BaseException) -> str:
    """A driver error in one line, "(code) server text", for logs and a member's reason."""
    code = driver.error_code(exc)
    return f"({code}) {_server_text(exc)}" if code else f"{type(exc).__name__}: {exc}"


def _server_text(exc: BaseException) -> str:
    args: tuple[object, ...] = getattr(exc, "args", ())
    text = args[1] if len(args) >= 2 else None
    return text if isinstance(text, str) else str(exc)


def _redact(text: str, password: str) -> str:
    """Defence in depth: drivers do not echo passwords, but a message must never carry one."""
    return text.replace(password, "***") if password and len(password) >= 3 else text
