"""What the pool needs from a DB-API driver, and the mechanisms shared by every adapter.

An adapter only answers driver-specific questions (how to connect, which fd, is a transaction
open); abandoning after fork, disconnect detection and error translation live here, once.

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
import functools
import logging
import math
import operator
import os
from collections.abc import Callable, Mapping
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
    1049: "unknown database",
    1130: "this host is not allowed to connect",
    1203: "the user has too many connections (max_user_connections)",
    2002: "connection refused (no server on that socket or port)",
    2003: "connection refused (no server on that host and port)",
    2005: "unknown host",
    2013: "timed out or lost during the handshake",
}

_ENCRYPTED_MODES = ("required", "verify_ca", "verify_identity")
_DEVNULL_FLAGS = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)


class Driver(abc.ABC):
    """One DB-API driver as the pool sees it. Subclasses are small; shared logic stays here."""

    name: str
    module: Any  # the DB-API module (MySQLdb, pymysql)
    # libmysqlclient/libmariadb take connect/read/write timeouts in whole seconds
    whole_second_timeouts = False

    def connect(
        self,
        url: DatabaseURL,
        *,
        connect_timeout: float,
        autocommit: bool,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """Open a connection; ``extra`` are driver connect arguments that override the URL's
        (``client_flag``, ``conv``...). Driver errors propagate (the pool translates them)."""
        kwargs = self.connect_kwargs(url, connect_timeout, autocommit)
        if extra and any(key.startswith("ssl") for key in extra):
            # TLS given as driver arguments (an ORM's own ssl dict) replaces the URL's, whole
            kwargs = {key: value for key, value in kwargs.items() if not key.startswith("ssl")}
        conn = self.open(**{**kwargs, **(extra or {})})
        if url.ssl_mode in _ENCRYPTED_MODES and not self.encrypted(conn):
            # libmariadb (3.3) and PyMySQL both carry on in plain text when the server offers
            # no TLS: refused here, before a single query is sent
            self.close(conn)
            raise DatabaseUnavailable(
                f"cannot connect to MySQL at {url.target}: TLS: the server does not offer TLS "
                f"(ssl_mode={url.ssl_mode}); the session was closed before any query"
            )
        return conn

    def encrypted(self, conn: Any) -> bool:
        """Whether the session runs over TLS (asked of the client library, no round trip);
        a driver that cannot tell says no, so ``ssl_mode=required`` refuses rather than trusts."""
        return False

    @abc.abstractmethod
    def connect_kwargs(
        self, url: DatabaseURL, connect_timeout: float, autocommit: bool
    ) -> dict[str, Any]:
        """The URL and settings as this driver's ``connect()`` keywords."""

    @abc.abstractmethod
    def open(self, **kwargs: Any) -> Any:
        """The driver's own connect call."""

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

    # is_open(conn): false once the caller closed the connection (both drivers keep an ``open``
    # flag; truthy, not always a bool). Asked at every return: a C attribute getter.
    is_open: Callable[[Any], Any] = operator.attrgetter("open")

    def connection_id(self, conn: Any) -> int:
        return int(conn.thread_id())

    def rollback(self, conn: Any) -> None:
        """Roll back; with postfork's adapters the ROLLBACK is sent and its reply is read
        later (see :meth:`finish_reset`): returning a connection costs no round trip."""
        conn.rollback()

    # reset_pending(conn): whether a ROLLBACK was sent on ``conn`` and its reply is not read
    # yet. Asked twice per checkout: a C attribute getter, no Python frame (every adapter's
    # connection class has the flag, see rollback()).
    reset_pending: Callable[[Any], bool] = operator.attrgetter("_postfork_reset_pending")

    # finish_reset(conn): read the reply of the pending ROLLBACK (normally arrived long ago);
    # raises the driver's error if the server failed it or went away. A C method caller too.
    finish_reset: Callable[[Any], None] = operator.methodcaller("_postfork_finish_reset")

    def close(self, conn: Any) -> None:
        """Close cleanly (sends COM_QUIT): only for connections this process opened."""
        conn.close()

    def session_wait_timeout(self, conn: Any) -> float:
        cursor = conn.cursor()
        try:
            cursor.execute("SELECT @@SESSION.wait_timeout")
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

    def error_code(self, exc: BaseException) -> int | None:
        """The MySQL error code of a driver error (both drivers put it in ``args[0]``)."""
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

    def discard_abandoned(self, conn: Any) -> None:
        """Release an abandoned connection's memory and fd; anything it sends goes to /dev/null."""
        try:
            self.close(conn)
        except Exception as exc:  # the driver may complain about the fd it no longer owns
            log.debug("closing an abandoned %s connection raised %r (harmless)", self.name, exc)


def point_fd_at_devnull(fd: int) -> None:
    """Replace ``fd`` with /dev/null in this process only; the parent's socket is untouched."""
    devnull = os.open(os.devnull, _DEVNULL_FLAGS)
    try:
        os.dup2(devnull, fd, inheritable=False)
    finally:
        os.close(devnull)


def connect_timeout_seconds(timeout: float) -> int:
    """libmysqlclient takes whole seconds; round up so a short timeout never becomes 0 (none)."""
    return max(1, math.ceil(timeout))


def translate_connect_error(
    driver: Driver, exc: BaseException, url: DatabaseURL, *, stage: str = "connect"
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


def describe_error(driver: Driver, exc: BaseException) -> str:
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
