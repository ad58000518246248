"""postfork's exceptions: one base class, one precise subclass per failure a caller can act on.

Messages name the limit that was hit and the target that failed, and never contain a password.
Every error pickles (``multiprocessing`` sends exceptions between processes): a pool error keeps
its pool for the caller in this process, but what crosses a pickle is its message and its plain
facts (urllib3's ``__reduce__`` rule), never the pool with its lock.
"""

from __future__ import annotations

from typing import Any


class Error(Exception):
    """Base of every error postfork raises itself; driver errors inside a lease pass through."""


class ConfigError(Error, ValueError):
    """The configuration (URL, option, argument) is malformed; retrying will not help."""


class MissingExtra(ConfigError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    def __init__(self, what: str, extra: str, *, hint: str = "") -> None:
        message = f"{what} is not installed: pip install 'postfork[{extra}]'" + (
            f" ({hint})" if hint else ""
        )
        super().__init__(message)
        self.what, self.extra, self.hint = what, extra, hint

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_missing_extra, (self.what, self.extra, self.hint))


def _rebuild_missing_extra(what: str, extra: str, hint: str) -> MissingExtra:
    return MissingExtra(what, extra, hint=hint)


class DatabaseUnavailable(Error):
    """A connection could not be opened: refused, timed out, access denied, unknown database.

    ``code`` is the MySQL error code when the server or client library gave one.
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_with_code, (type(self), str(self), self.code))


def _rebuild_with_code(cls: type[DatabaseUnavailable], message: str, code: int | None) -> Any:
    return cls(message, code=code)


class PoolError(Error):
    """An error about a pool's own state. ``pool`` is the pool in the process that raised it
    (its repr holds no password) and ``None`` after unpickling; ``pool_repr`` survives both."""

    def __init__(self, message: str, *, pool: Any = None, pool_repr: str | None = None) -> None:
        super().__init__(message)
        self.pool = pool
        self.pool_repr = pool_repr if pool_repr is not None else repr(pool) if pool else ""

    def facts(self) -> dict[str, Any]:
        """The plain attributes a subclass adds (what pickling carries besides the message)."""
        return {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_pool_error, (type(self), str(self), self.pool_repr, self.facts()))


def _rebuild_pool_error(
    cls: type[PoolError], message: str, pool_repr: str, facts: dict[str, Any]
) -> PoolError:
    return cls(message, pool_repr=pool_repr, **facts)


class PoolTimeout(PoolError):
    """Every connection stayed in use for the whole ``checkout_timeout``."""

    def __init__(
        self,
        message: str,
        *,
        pool: Any = None,
        pool_repr: str | None = None,
        max_size: int = 0,
        checkout_timeout: float = 0.0,
        waited: float = 0.0,
        pid: int = 0,
    ) -> None:
        super().__init__(message, pool=pool, pool_repr=pool_repr)
        self.max_size, self.checkout_timeout = max_size, checkout_timeout
        self.waited, self.pid = waited, pid

    def facts(self) -> dict[str, Any]:
        return {
            "max_size": self.max_size,
            "checkout_timeout": self.checkout_timeout,
            "waited": self.waited,
            "pid": self.pid,
        }


class PoolClosed(PoolError):
    """The pool was closed; it hands out no more connections."""


class DeadlineExceeded(Error):
    """The deadline of the block (``postfork.deadline``) passed before the database answered.

    Raised at checkout when no time is left to wait or connect; a query the deadline cut off
    raises the driver's "lost connection" error instead (2013), with ``deadline.exceeded`` set.
    ``seconds`` is the deadline that was set.
    """

    def __init__(self, message: str, *, seconds: float = 0.0) -> None:
        super().__init__(message)
        self.seconds = seconds

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_deadline_exceeded, (str(self), self.seconds))


def _rebuild_deadline_exceeded(message: str, seconds: float) -> DeadlineExceeded:
    return DeadlineExceeded(message, seconds=seconds)


class StateError(Error, RuntimeError):
    """An illegal state transition: a bug in postfork, never a user error."""


class NoMemberAvailable(DatabaseUnavailable):
    """No member of a topology may serve this checkout (every replica down, lagging or stopped
    with ``fallback="fail"``; no Galera node Synced). The message says what each member is."""
