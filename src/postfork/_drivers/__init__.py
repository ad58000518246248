"""Driver adapters: one small class per DB-API driver behind the common ``Driver`` interface."""

from __future__ import annotations

import functools
from typing import Any

from .._url import DatabaseURL
from ..errors import ConfigError
from ._base import Driver, point_fd_at_devnull, translate_connect_error

DRIVER_NAMES = ("mysqlclient", "pymysql")

__all__ = [
    "DRIVER_NAMES",
    "Driver",
    "connect",
    "load_driver",
    "point_fd_at_devnull",
    "translate_connect_error",
]


@functools.cache
def load_driver(name: str) -> Driver:
    """The adapter for ``name``, created once per process (adapters hold no connection state)."""
    if name == "mysqlclient":
        from .mysqlclient import MysqlclientDriver

        return _instantiate(MysqlclientDriver, "mysqlclient")
    if name == "pymysql":
        from .pymysql import PyMySQLDriver

        return _instantiate(PyMySQLDriver, "PyMySQL")
    raise ConfigError(f"unknown driver {name!r}; choose one of: {', '.join(DRIVER_NAMES)}")


def connect(
    url: DatabaseURL,
    *,
    driver: str = "mysqlclient",
    timeout: float = 10.0,
    autocommit: bool = False,
) -> Any:
    """One connection outside any pool (seeding, admin), with the pool's error translation."""
    adapter = load_driver(driver)
    try:
        return adapter.connect(url, connect_timeout=timeout, autocommit=autocommit)
    except Exception as exc:
        if adapter.is_driver_error(exc):
            raise translate_connect_error(adapter, exc, url) from exc
        raise


def _instantiate(cls: type[Driver], distribution: str) -> Driver:
    try:
        return cls()
    except ImportError as exc:
        raise ConfigError(
            f"driver {cls.name!r} is not installed: pip install {distribution}"
        ) from exc
