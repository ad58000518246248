"""postfork: MySQL/MariaDB connection pooling for pre-fork Python app servers.

A pool that is warm before a worker's first request, never shares a socket across ``fork()``
and never hands out a dead connection. Public: the names in ``__all__`` here, and the modules
``postfork.wsgi`` (timing, profiling and metrics middleware), ``postfork.gunicorn`` (hooks for
a gunicorn configuration) and ``postfork.accelerate`` (uWSGI's respawn accelerator). Everything
else is internal and may change.
"""

from __future__ import annotations

from . import log_output
from .errors import (
    ConfigError,
    DatabaseUnavailable,
    DeadlineExceeded,
    Error,
    MissingExtra,
    NoMemberAvailable,
    PoolClosed,
    PoolError,
    PoolTimeout,
)
from .install import Installation, WarmReport, after_fork, install
from .pool import (
    AsyncLease,
    AsyncPool,
    Deadline,
    DiscardReason,
    Lease,
    Pool,
    PoolOptions,
    PoolStats,
    deadline,
)
from .response_hooks import after_response
from .topology import Cluster
from .url import DatabaseURL, parse_url

__version__ = "0.2.0.dev0"  # the changelog's Unreleased entries; 0.1.0 the baseline

__all__ = [
    "AsyncLease",
    "AsyncPool",
    "Cluster",
    "ConfigError",
    "DatabaseURL",
    "DatabaseUnavailable",
    "Deadline",
    "DeadlineExceeded",
    "DiscardReason",
    "Error",
    "Installation",
    "Lease",
    "MissingExtra",
    "NoMemberAvailable",
    "Pool",
    "PoolClosed",
    "PoolError",
    "PoolOptions",
    "PoolStats",
    "PoolTimeout",
    "WarmReport",
    "__version__",
    "after_fork",
    "after_response",
    "deadline",
    "install",
    "parse_url",
]

log_output.install()  # WARNINGs and each worker's warm line reach stderr until the app logs
