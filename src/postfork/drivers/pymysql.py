"""Adapter for PyMySQL, the pure-Python driver."""

from __future__ import annotations

import dataclasses
import importlib
import os
import ssl
import threading
from typing import Any

from ..url import DatabaseURL
from .base import Driver, pymysql_family_kwargs
from .tls import tls_files

COM_QUERY = 3  # pymysql.constants.COMMAND.COM_QUERY (the protocol's own number)


_CR_SSL_CONNECTION_ERROR = 2026  # "SSL is required but the server doesn't support it"


class PyMySQLDriver(Driver):
    name = "pymysql"

    def __init__(self) -> None:
        import pymysql
        from pymysql.constants import SERVER_STATUS

        self.module = pymysql
        self._in_trans_flag = int(SERVER_STATUS.SERVER_STATUS_IN_TRANS)
        self._connection_class = _connection_class(pymysql.connections.Connection)

    def open(self, **kwargs: Any) -> Any:
        return self._connection_class(**kwargs)

    def connect_kwargs(
        self, url: DatabaseURL, connect_timeout: float, autocommit: bool
    ) -> dict[str, Any]:
        return _connect_kwargs(url, connect_timeout, autocommit)

    def fileno(self, conn: Any) -> int:
        sock = conn._sock  # PyMySQL has no public accessor for its socket
        if sock is None:
            raise self.module.InterfaceError(0, "connection is closed")
        return int(sock.fileno())

    def connect(self, url: DatabaseURL, **settings: Any) -> Any:
        """``ssl_mode=preferred`` falls back to plain text when the server offers no TLS, as
        MySQL's clients do; PyMySQL given an ``ssl`` dict refuses instead, so connect again."""
        try:
            return super().connect(url, **settings)
        except self.module.OperationalError as exc:
            if url.ssl_mode != "preferred" or self.error_code(exc) != _CR_SSL_CONNECTION_ERROR:
                raise
        plain = dataclasses.replace(url, options={**url.options, "ssl_mode": "disabled"})
        return super().connect(plain, **settings)

    def encrypted(self, conn: Any) -> bool:
        return isinstance(conn._sock, ssl.SSLSocket)

    def in_transaction(self, conn: Any) -> bool:
        # PyMySQL keeps the status flags of the last OK/EOF packet: no round trip.
        return bool(conn.server_status & self._in_trans_flag)

    def preload(self) -> None:
        for module in ("pymysql._auth", "pymysql.cursors"):  # imported lazily on first connect
            importlib.import_module(module)
        self._connection_class.preferred_tls_context()


def _mtime(path: str | None) -> float:
    return os.stat(path).st_mtime if path else 0.0


def _connection_class(base: Any) -> Any:
    """PyMySQL's Connection with two fixes for a pool that connects from fresh workers, and a
    rollback that does not wait for the server's reply (see ``drivers.base``).

    - The whole handshake is bounded by ``connect_timeout``: PyMySQL applies it to the TCP
      connect only, so a server that accepts but never greets hangs the worker forever.
    - The default "preferred" TLS context is built once per process: PyMySQL >= 1.1 builds it on
      every connect, loading the system CA bundle (27 ms measured here) for a mode that never
      verifies the server (CERT_NONE). It holds no connection state, so one context, made in
      the master and inherited by the workers, serves them all.
    """

    class Connection(base):  # type: ignore[misc]
        _preferred_tls: Any = None
        _preferred_tls_lock = threading.Lock()
        _read_timeout: Any
        _write_timeout: Any
        connect_timeout: Any

        @classmethod
        def preferred_tls_context(cls) -> Any:
            with cls._preferred_tls_lock:
                if cls._preferred_tls is None:
                    cls._preferred_tls = base._create_ssl_ctx(None, {})
                return cls._preferred_tls

        _tls_contexts: dict[Any, Any] = {}  # one per settings and file versions, per process

        def _create_ssl_ctx(self, sslp: Any) -> Any:
            if not isinstance(sslp, dict):
                return super()._create_ssl_ctx(sslp)
            if not sslp:
                return self.preferred_tls_context()
            # the ssl_mode contexts too: built once per settings and file versions, not per
            # connect (without a CA, building one loads the system CA bundle: 27 ms)
            key = (*sorted(sslp.items()), *(_mtime(sslp.get(f)) for f in ("ca", "cert", "key")))
            with self._preferred_tls_lock:
                context = self._tls_contexts.get(key)
                if context is None:
                    context = self._tls_contexts[key] = super()._create_ssl_ctx(sslp)
                return context

        _postfork_reset_pending = False

        def rollback(self) -> None:
            if self._postfork_reset_pending:
                return  # a ROLLBACK is on its way and nothing was sent since: nothing to undo
            self._execute_command(COM_QUERY, "ROLLBACK")
            self._postfork_reset_pending = True  # the OK packet is read later

        def _postfork_finish_reset(self) -> None:
            self._postfork_reset_pending = False
            self._read_ok_packet()

        def _execute_command(self, command: int, sql: Any) -> Any:
            # every command goes through here: a pending ROLLBACK reply is read first
            if self._postfork_reset_pending:
                self._postfork_finish_reset()
            return super()._execute_command(command, sql)

        def connect(self, sock: Any = None) -> None:
            timeouts = self._read_timeout, self._write_timeout
            self._read_timeout = self._write_timeout = self.connect_timeout
            try:
                super().connect(sock)
            finally:
                self._read_timeout, self._write_timeout = timeouts

    Connection.__module__ = base.__module__
    return Connection


def _connect_kwargs(url: DatabaseURL, connect_timeout: float, autocommit: bool) -> dict[str, Any]:
    kwargs = pymysql_family_kwargs(url, connect_timeout, autocommit)
    for key in ("read_timeout", "write_timeout"):
        if key in url.options:
            kwargs[key] = url.options[key]
    kwargs.update(_tls_kwargs(url))
    return kwargs


def _tls_kwargs(url: DatabaseURL) -> dict[str, Any]:
    """``ssl_mode`` as PyMySQL's ``ssl`` dict (see drivers/tls.py for the meanings). Its own
    ``ssl_ca=`` keyword checks nothing unless told; the dict states every check."""
    mode = url.ssl_mode
    if mode == "disabled":
        return {"ssl_disabled": True}
    files = tls_files(url)
    if mode in ("preferred", "required"):
        files.pop("ca", None)  # unauthenticated: no CA, so PyMySQL uses CERT_NONE
        return {"ssl": {**files, "check_hostname": False}}
    verify_name = mode == "verify_identity"
    return {"ssl": {**files, "check_hostname": verify_name, "verify_mode": ssl.CERT_REQUIRED}}
