"""postfork: MySQL/MariaDB connection pooling for pre-fork Python app servers.

A pool that is warm before a worker's first request, never shares a socket across ``fork()``
and never hands out a dead connection. Only the names in ``__all__`` are public.
"""

from __future__ import annotations

import logging

from ._install import Installation, after_fork, install
from ._pool import Lease, Pool
from ._url import DatabaseURL, parse_url
from .errors import (
    ConfigError,
    DatabaseUnavailable,
    Error,
    PoolClosed,
    PoolError,
    PoolTimeout,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DatabaseURL",
    "DatabaseUnavailable",
    "Error",
    "Installation",
    "Lease",
    "Pool",
    "PoolClosed",
    "PoolError",
    "PoolTimeout",
    "__version__",
    "after_fork",
    "install",
    "parse_url",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
