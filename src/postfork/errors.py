"""postfork's exceptions: one base class, one precise subclass per failure a caller can act on.

Messages name the limit that was hit and the target that failed, and never contain a password.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._pool import Pool


class Error(Exception):
    """Base of every error postfork raises itself; driver errors inside a lease pass through."""


class ConfigError(Error, ValueError):
    """The configuration (URL, option, argument) is malformed; retrying will not help."""


class DatabaseUnavailable(Error):
    """A connection could not be opened: refused, timed out, access denied, unknown database.

    ``code`` is the MySQL error code when the server or client library gave one.
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class PoolError(Error):
    """An error about the pool's own state; carries the pool (whose repr holds no password)."""

    def __init__(self, message: str, *, pool: Pool | None = None) -> None:
        super().__init__(message)
        self.pool = pool


class PoolTimeout(PoolError):
    """Every connection stayed in use for the whole ``checkout_timeout``."""


class PoolClosed(PoolError):
    """The pool was closed; it hands out no more connections."""


class StateError(Error, RuntimeError):
    """An illegal slot transition: a bug in postfork, never a user error."""
