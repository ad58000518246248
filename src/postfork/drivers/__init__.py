"""Driver adapters: one small class per driver behind the common interfaces, ``Driver`` for
the DB-API drivers (mysqlclient, PyMySQL: ``postfork.Pool``) and ``AsyncDriver`` for the
asyncio drivers (asyncmy, aiomysql: ``postfork.AsyncPool``).

Each driver is an optional dependency (``postfork[mysqlclient]``, ``postfork[asyncmy]``...): a
missing one is a ConfigError naming the extra, raised when the driver is first asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, TypeVar

from ..errors import ConfigError, MissingExtra
from ..url import DatabaseURL
from .aio import AsyncDriver
from .base import (
    Driver,
    DriverBase,
    describe_error,
    point_fd_at_devnull,
    translate_connect_error,
)

DRIVER_NAMES = ("mysqlclient", "pymysql")
ASYNC_DRIVER_NAMES = ("asyncmy", "aiomysql")

__all__ = [
    "ASYNC_DRIVER_NAMES",
    "DRIVER_NAMES",
    "AsyncDriver",
    "Driver",
    "DriverBase",
    "connect",
    "describe_error",
    "installed_driver",
    "load_async_driver",
    "load_driver",
    "point_fd_at_devnull",
    "translate_connect_error",
]


@functools.cache
def load_driver(name: str | None = None) -> Driver:
    """The DB-API adapter for ``name`` (default mysqlclient), created once per process
    (adapters hold no connection state)."""
    name = name or "mysqlclient"
    if name in ASYNC_DRIVER_NAMES:
        raise ConfigError(
            f"{name} is an asyncio driver: use postfork.AsyncPool (or mysql+mysqldb:// or "
            "mysql+pymysql:// for postfork.Pool)"
        )
    if name == "mysqlclient":
        from .mysqlclient import MysqlclientDriver

        return _instantiate(MysqlclientDriver, "mysqlclient", other="pymysql")
    if name == "pymysql":
        from .pymysql import PyMySQLDriver

        return _instantiate(PyMySQLDriver, "pymysql", other="mysqlclient")
    raise ConfigError(f"unknown driver {name!r}; choose one of: {', '.join(DRIVER_NAMES)}")


@functools.cache
def load_async_driver(name: str | None = None) -> AsyncDriver:
    """The asyncio adapter for ``name`` (default asyncmy), created once per process."""
    name = name or "asyncmy"
    if name in DRIVER_NAMES:
        raise ConfigError(
            f"{name} is not an asyncio driver: use postfork.Pool, or a mysql+asyncmy:// or "
            "mysql+aiomysql:// URL for postfork.AsyncPool"
        )
    if name == "asyncmy":
        from .asyncmy import AsyncmyDriver

        return _instantiate(AsyncmyDriver, "asyncmy", other="aiomysql")
    if name == "aiomysql":
        from .aiomysql import AiomysqlDriver

        return _instantiate(AiomysqlDriver, "aiomysql", other="asyncmy")
    raise ConfigError(
        f"unknown asyncio driver {name!r}; choose one of: {', '.join(ASYNC_DRIVER_NAMES)}"
    )


def installed_driver() -> str:
    """The first installed driver (mysqlclient preferred), for tools that work with either;
    with none installed, "mysqlclient" (whose loading then names the extra to install)."""
    for name in DRIVER_NAMES:
        try:
            load_driver(name)
        except ConfigError:
            continue
        return name
    return DRIVER_NAMES[0]


def connect(
    url: DatabaseURL,
    *,
    driver: str | None = None,
    timeout: float = 10.0,
    autocommit: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """One connection outside any pool (seeding, admin), with the pool's error translation.
    ``driver`` defaults to the URL's choice, else the first installed driver; ``extra`` are
    driver connect arguments, as a pool's ``connect_args``."""
    adapter = load_driver(driver or url.driver or installed_driver())
    try:
        return adapter.connect(url, connect_timeout=timeout, autocommit=autocommit, extra=extra)
    except Exception as exc:
        if adapter.is_driver_error(exc):
            raise translate_connect_error(adapter, exc, url) from exc
        raise


D = TypeVar("D", bound=DriverBase)


def _instantiate(cls: type[D], extra: str, *, other: str) -> D:
    try:
        return cls()
    except ImportError as exc:
        raise MissingExtra(
            f"driver {cls.name!r}",
            extra,
            hint=f"or choose driver={other!r}, or a mysql+{other}:// URL",
        ) from exc
