"""Adapter for mysqlclient (``MySQLdb``), the default driver."""

from __future__ import annotations

import ctypes
import logging
import tempfile
from collections.abc import Callable
from typing import Any

from ..url import DatabaseURL
from .base import Driver, connect_timeout_seconds
from .tls import tls_files

log = logging.getLogger("postfork.driver")

_SERVER_STATUS_IN_TRANS = 0x0001
_MARIADB_CONNECTION_SERVER_STATUS = 30  # enum mariadb_value in mariadb/mysql.h (Connector/C 3)
_CAPSULE_NAME = b"_mysql.connection.native_connection"


class _ServerStatusReader:
    """Reads the server status flags libmariadb keeps from the last OK packet: zero round trips.

    mysqlclient exposes the native ``MYSQL*`` as a capsule; ``mariadb_get_infov`` reads the flags.
    Against Oracle's libmysqlclient the symbol is missing and the pool rolls back conservatively.
    """

    def __init__(self, extension_path: str) -> None:
        self._get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
        self._get_pointer.restype = ctypes.c_void_p
        self._get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
        try:
            get_info = ctypes.CDLL(extension_path).mariadb_get_infov
        except (OSError, AttributeError) as exc:
            log.info("mysqlclient: no mariadb_get_infov (%s); rolling back on every return", exc)
            self._get_info = None
            self._get_cipher: Any = None
            return
        get_info.restype = ctypes.c_char
        get_info.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        self._get_info = get_info
        cipher = ctypes.CDLL(extension_path).mysql_get_ssl_cipher
        cipher.restype = ctypes.c_char_p
        cipher.argtypes = [ctypes.c_void_p]
        self._get_cipher = cipher

    def ssl_cipher(self, conn: Any) -> str | None:
        """The session's TLS cipher (``mysql_get_ssl_cipher``), None in plain text."""
        if self._get_cipher is None:  # Oracle's libmysqlclient: trust the library's own checks
            return "unknown"
        pointer = self._get_pointer(conn._get_native_connection(), _CAPSULE_NAME)
        name = self._get_cipher(pointer)
        return name.decode() if name else None

    def probe(self, conn: Any) -> Callable[[], bool]:
        """Bind the native handle once: a check is then one C call (about 1 us)."""
        if self._get_info is None:
            return _always_true
        pointer = self._get_pointer(conn._get_native_connection(), _CAPSULE_NAME)
        status = ctypes.c_uint(0)
        status_ref, get_info = ctypes.byref(status), self._get_info

        def in_transaction() -> bool:
            if get_info(pointer, _MARIADB_CONNECTION_SERVER_STATUS, status_ref) != b"\0":
                return True  # unknown: assume the worst, a rollback is always safe
            return bool(status.value & _SERVER_STATUS_IN_TRANS)

        return in_transaction


def _always_true() -> bool:
    return True


class MysqlclientDriver(Driver):
    name = "mysqlclient"
    whole_second_timeouts = True

    def __init__(self) -> None:
        import MySQLdb
        from MySQLdb import _mysql, connections

        self.module = MySQLdb
        self._status = _ServerStatusReader(_mysql.__file__)
        self._connection_class = _connection_class(connections.Connection, _mysql)

    def open(self, **kwargs: Any) -> Any:
        return self._connection_class(**kwargs)

    def connect_kwargs(
        self, url: DatabaseURL, connect_timeout: float, autocommit: bool
    ) -> dict[str, Any]:
        return _connect_kwargs(url, connect_timeout, autocommit)

    def fileno(self, conn: Any) -> int:
        return int(conn.fileno())

    def encrypted(self, conn: Any) -> bool:
        return self._status.ssl_cipher(conn) is not None

    def in_transaction(self, conn: Any) -> bool:
        return self._status.probe(conn)()

    def transaction_probe(self, conn: Any) -> Callable[[], bool]:
        return self._status.probe(conn)

    def preload(self) -> None:
        """Pay the client library's one-time set-up (~13-18 ms measured here) now, not in a worker.

        libmariadb initialises itself inside the first ``mysql_real_connect`` of a process; a
        connect to a socket path that cannot exist runs that code and fails at once, offline.
        """
        with tempfile.TemporaryDirectory(prefix="postfork-preload-") as empty:
            try:
                self.module.connect(
                    unix_socket=f"{empty}/none.sock", user="preload", connect_timeout=1
                )
            except self.module.OperationalError:
                return


# Methods of MySQLdb's connection that send a command: each reads a pending ROLLBACK reply
# first, or the server's answers would be read out of order ("commands out of sync").
_SENDERS = (
    "autocommit", "change_user", "commit", "dump_debug_info", "kill", "ping", "query",
    "select_db", "send_query", "set_character_set", "set_server_option", "shutdown", "stat",
)  # fmt: skip


def _connection_class(base: Any, native: Any) -> Any:
    """MySQLdb's Connection with a rollback that does not wait for the server's reply."""
    send_query, read_query_result = (
        native.connection.send_query,
        native.connection.read_query_result,
    )

    base_query, base_commit = base.query, base.commit

    class Connection(base):  # type: ignore[misc]
        _postfork_reset_pending = False

        # The hot senders get their own signature: a generic (*args, **kwargs) wrapper costs
        # about 0.17 us a call, this about 0.01 us (every cursor.execute calls query()).
        def query(self, query: Any) -> Any:
            if self._postfork_reset_pending:
                self._postfork_finish_reset()
            return base_query(self, query)

        def commit(self) -> Any:
            if self._postfork_reset_pending:
                self._postfork_finish_reset()
            return base_commit(self)

        def rollback(self) -> None:
            if self._postfork_reset_pending:
                return  # a ROLLBACK is on its way and nothing was sent since: nothing to undo
            send_query(self, b"ROLLBACK")
            self._postfork_reset_pending = True

        def _postfork_finish_reset(self) -> None:
            self._postfork_reset_pending = False
            read_query_result(self)

    for name in _SENDERS:
        if name not in Connection.__dict__:
            setattr(Connection, name, _reading_pending_reset_first(getattr(base, name)))
    Connection.__module__, Connection.__qualname__ = base.__module__, base.__qualname__
    return Connection


def _reading_pending_reset_first(method: Callable[..., Any]) -> Callable[..., Any]:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self._postfork_reset_pending:
            self._postfork_finish_reset()
        return method(self, *args, **kwargs)

    call.__name__ = call.__qualname__ = getattr(method, "__name__", "call")
    call.__doc__ = method.__doc__
    return call


def _connect_kwargs(url: DatabaseURL, connect_timeout: float, autocommit: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "user": url.user,
        "passwd": url.password,
        "connect_timeout": connect_timeout_seconds(connect_timeout),
        "autocommit": autocommit,
        "charset": url.options.get("charset", "utf8mb4"),
    }
    if url.unix_socket:
        kwargs["unix_socket"] = url.unix_socket
        kwargs["host"] = "localhost"
    else:
        kwargs["host"], kwargs["port"] = url.host, url.port
    if url.database:
        kwargs["db"] = url.database
    for key in ("read_timeout", "write_timeout"):
        if key in url.options:
            kwargs[key] = connect_timeout_seconds(url.options[key])
    kwargs.update(_tls_kwargs(url))
    return kwargs


_SSL_MODE_ARGUMENT = {  # libmariadb 3.3: REQUIRED + a CA checks the chain, not the host name
    "disabled": "DISABLED",
    "preferred": "PREFERRED",
    "required": "REQUIRED",
    "verify_ca": "REQUIRED",
    "verify_identity": "VERIFY_IDENTITY",
}


def _tls_kwargs(url: DatabaseURL) -> dict[str, Any]:
    """``ssl_mode`` as libmariadb understands it (see drivers/tls.py for the meanings)."""
    mode = url.ssl_mode
    if mode == "disabled":
        return {"ssl_mode": "DISABLED"}
    files = tls_files(url)
    if mode in ("preferred", "required"):
        files.pop("ca", None)  # unauthenticated by definition: no chain check
    # a cipher list makes libmariadb start TLS at all under PREFERRED (it stays in plain
    # text otherwise); DEFAULT is OpenSSL's own list
    ssl = {"cipher": "DEFAULT", **files}
    return {"ssl_mode": _SSL_MODE_ARGUMENT[mode], "ssl": ssl}
