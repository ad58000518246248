"""Adapter for PyMySQL, the pure-Python driver."""

from __future__ import annotations

from typing import Any

from .._url import DatabaseURL
from ._base import Driver


class PyMySQLDriver(Driver):
    name = "pymysql"

    def __init__(self) -> None:
        import pymysql
        from pymysql.constants import SERVER_STATUS

        self.module = pymysql
        self._in_trans_flag = int(SERVER_STATUS.SERVER_STATUS_IN_TRANS)

    def connect(self, url: DatabaseURL, *, connect_timeout: float, autocommit: bool) -> Any:
        return self.module.connect(**_connect_kwargs(url, connect_timeout, autocommit))

    def fileno(self, conn: Any) -> int:
        sock = conn._sock  # PyMySQL has no public accessor for its socket
        if sock is None:
            raise self.module.InterfaceError(0, "connection is closed")
        return int(sock.fileno())

    def in_transaction(self, conn: Any) -> bool:
        # PyMySQL keeps the status flags of the last OK/EOF packet: no round trip.
        return bool(conn.server_status & self._in_trans_flag)

    def preload(self) -> None:
        import pymysql._auth
        import pymysql.connections
        import pymysql.cursors  # noqa: F401


def _connect_kwargs(url: DatabaseURL, connect_timeout: float, autocommit: bool) -> dict[str, Any]:
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
        kwargs["database"] = url.database
    for key in ("read_timeout", "write_timeout"):
        if key in url.options:
            kwargs[key] = url.options[key]
    if url.tls:
        kwargs["ssl"] = url.tls
    return kwargs
