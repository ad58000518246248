"""Driver adapters: one small class per driver behind the common interfaces, ``Driver`` for
the DB-API drivers (mysqlclient, PyMySQL: ``postfork.Pool``) and ``AsyncDriver`` for the
asyncio drivers (asyncmy, aiomysql: ``postfork.AsyncPool``).

Each driver is an optional dependency (``postfork[mysqlclient]``, ``postfork[asyncmy]``...): a
missing one is a ConfigError naming the extra, raised when the driver is first asked for.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import Any

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


# name: (module in this package, adapter class, the other driver of the same kind)
_ADAPTERS = {
    "mysqlclient": ("mysqlclient", "MysqlclientDriver", "pymysql"),
    "pymysql": ("pymysql", "PyMySQLDriver", "mysqlclient"),
    "asyncmy": ("asyncmy", "AsyncmyDriver", "aiomysql"),
    "aiomysql": ("aiomysql", "AiomysqlDriver", "asyncmy"),
}


@functools.cache
def load_driver(name: str | None = None) -> Driver:
    """The DB-API adapter for ``name`` (default mysqlclient), created once per process
    (adapters hold no connection state)."""
    adapter = _load(
        name or "mysqlclient",
        DRIVER_NAMES,
        kind="driver",
        other_kind="is an asyncio driver: use postfork.AsyncPool (or mysql+mysqldb:// or "
        "mysql+pymysql:// for postfork.Pool)",
    )
    assert isinstance(adapter, Driver)
    return adapter


@functools.cache
def load_async_driver(name: str | None = None) -> AsyncDriver:
    """The asyncio adapter for ``name`` (default asyncmy), created once per process."""
    adapter = _load(
        name or "asyncmy",
        ASYNC_DRIVER_NAMES,
        kind="asyncio driver",
        other_kind="is not an asyncio driver: use postfork.Pool, or a mysql+asyncmy:// or "
        "mysql+aiomysql:// URL for postfork.AsyncPool",
    )
    assert isinstance(adapter, AsyncDriver)
    return adapter


def _load(name: str, names: tuple[str, ...], *, kind: str, other_kind: str) -> DriverBase:
    if name not in names:
        if name in _ADAPTERS:
            raise ConfigError(f"{name} {other_kind}")
        raise ConfigError(f"unknown {kind} {name!r}; choose one of: {', '.join(names)}")
    module, class_name, other = _ADAPTERS[name]
    try:
        adapter: type[DriverBase] = getattr(
            importlib.import_module(f".{module}", __name__), class_name
        )
        return adapter()
    except ImportError as exc:
        raise MissingExtra(
            f"driver {name!r}", name, hint=f"or choose driver={other!r}, or a mysql+{other}:// URL"
        ) from exc


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
