"""Driver adapters: one small class per DB-API driver behind the common ``Driver`` interface.

Each driver is an optional dependency (``postfork[mysqlclient]``, ``postfork[pymysql]``): a
missing one is a ConfigError naming the extra, raised when the driver is first asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, MissingExtra
from ..url import DatabaseURL
from .base import Driver, describe_error, point_fd_at_devnull, translate_connect_error

DRIVER_NAMES = ("mysqlclient", "pymysql")

__all__ = [
    "DRIVER_NAMES",
    "Driver",
    "connect",
    "describe_error",
    "installed_driver",
    "load_driver",
    "point_fd_at_devnull",
    "translate_connect_error",
]


@functools.cache
def load_driver(name: str) -> Driver:
    """The adapter for ``name``, created once per process (adapters hold no connection state)."""
    if name == "mysqlclient":
        from .mysqlclient import MysqlclientDriver

        return _instantiate(MysqlclientDriver, "mysqlclient", other="pymysql")
    if name == "pymysql":
        from .pymysql import PyMySQLDriver

        return _instantiate(PyMySQLDriver, "pymysql", other="mysqlclient")
    raise ConfigError(f"unknown driver {name!r}; choose one of: {', '.join(DRIVER_NAMES)}")


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


def _instantiate(cls: type[Driver], extra: str, *, other: str) -> Driver:
    try:
        return cls()
    except ImportError as exc:
        raise MissingExtra(
            f"driver {cls.name!r}",
            extra,
            hint=f"or choose driver={other!r}, or a mysql+{other}:// URL",
        ) from exc
