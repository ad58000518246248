"""Adapter for aiomysql, the asyncio port of PyMySQL (SQLAlchemy's ``mysql+aiomysql``)."""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import ConfigError
from ..url import DatabaseURL
from .aio import AsyncDriver, pipelined_connection_class, tls_arguments
from .base import pymysql_family_kwargs


class AiomysqlDriver(AsyncDriver):
    name = "aiomysql"

    def __init__(self) -> None:
        import aiomysql
        from aiomysql import connection

        self.module = aiomysql
        self._connection_class = pipelined_connection_class(connection.Connection)

    async def open(self, **kwargs: Any) -> Any:
        conn = self._connection_class(**kwargs)
        await conn._connect()
        return conn

    def connect_kwargs(
        self, url: DatabaseURL, connect_timeout: float, autocommit: bool
    ) -> dict[str, Any]:
        # aiomysql offers TLS only where the server does (preferred falls back by itself);
        # required and stronger are checked after the connect (DriverBase.plain_text_refused)
        kwargs = pymysql_family_kwargs(url, connect_timeout, autocommit, database_key="db")
        for option in ("read_timeout", "write_timeout"):
            if option in url.options:
                raise ConfigError(
                    f"aiomysql has no {option}: remove it from the URL and bound queries with "
                    "postfork.deadline() (or asyncio.timeout()), or use mysql+asyncmy://"
                )
        return {**kwargs, **tls_arguments(url)}

    def transport(self, conn: Any) -> asyncio.Transport | None:
        writer = conn._writer
        return None if writer is None else writer.transport

    def unread(self, conn: Any) -> bool:
        reader = conn._reader
        if reader is None:
            return True
        return bool(reader._buffer) or reader._eof or reader.exception() is not None

    def forget_transport(self, conn: Any) -> None:
        conn._writer = conn._reader = None

    def preload(self) -> None:
        from aiomysql import cursors  # noqa: F401  (imported on a first connect otherwise)
