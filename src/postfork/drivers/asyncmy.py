"""Adapter for asyncmy, the asyncio driver with a Cython core (SQLAlchemy's ``mysql+asyncmy``)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from ..errors import ConfigError
from ..url import DatabaseURL
from .aio import AsyncDriver, pipelined_connection_class, tls_arguments
from .base import pymysql_family_kwargs

_CR_SSL_CONNECTION_ERROR = 2026


class AsyncmyDriver(AsyncDriver):
    name = "asyncmy"

    def __init__(self) -> None:
        import asyncmy
        from asyncmy import connection, errors

        self.module = errors  # asyncmy's DB-API exception classes live in asyncmy.errors
        self._package = asyncmy
        self._connection_class = pipelined_connection_class(connection.Connection)

    async def open(self, **kwargs: Any) -> Any:
        conn = self._connection_class(**kwargs)
        await conn.connect()
        return conn

    async def connect(self, url: DatabaseURL, **settings: Any) -> Any:
        """``ssl_mode=preferred`` falls back to plain text when the server offers no TLS, as
        MySQL's clients do; asyncmy given a context starts TLS regardless, so connect again."""
        try:
            return await super().connect(url, **settings)
        except self.module.OperationalError as exc:
            if url.ssl_mode != "preferred" or not _no_tls_offered(exc):
                raise
        plain = dataclasses.replace(url, options={**url.options, "ssl_mode": "disabled"})
        return await super().connect(plain, **settings)

    def connect_kwargs(
        self, url: DatabaseURL, connect_timeout: float, autocommit: bool
    ) -> dict[str, Any]:
        kwargs = pymysql_family_kwargs(url, connect_timeout, autocommit)
        if "read_timeout" in url.options:
            kwargs["read_timeout"] = url.options["read_timeout"]
        if "write_timeout" in url.options:
            raise ConfigError(
                "asyncmy has no write_timeout (asyncio buffers writes): remove it from the URL; "
                "read_timeout and postfork.deadline() bound a query"
            )
        return {**kwargs, **tls_arguments(url)}

    def transport(self, conn: Any) -> asyncio.Transport | None:
        return conn._transport  # type: ignore[no-any-return]

    def unread(self, conn: Any) -> bool:
        proto = conn._proto
        return proto is None or proto.eof or proto.exc is not None or proto.length > proto.pos

    def forget_transport(self, conn: Any) -> None:
        conn._transport = None
        conn._connected = False

    def preload(self) -> None:
        from asyncmy import auth, cursors  # noqa: F401  (imported on a first connect otherwise)


def _no_tls_offered(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "ssl" in text or "tls" in text or (exc.args[:1] == (_CR_SSL_CONNECTION_ERROR,))
