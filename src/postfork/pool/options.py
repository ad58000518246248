"""Every pool option, defined once: its default, what it accepts and the message when it does
not. ``Pool(**options)``, ``AsyncPool(**options)``, the SQLAlchemy pool classes and the Django
backend's ``OPTIONS`` all go through :class:`PoolOptions`; a pool reads its settings from the
one object :meth:`PoolOptions.resolved` gives, never from copies."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigError
from ..url import DatabaseURL
from ..validate import FRACTION, NON_NEGATIVE_NUMBER, POSITIVE_SECONDS

DEFAULT_CHECKOUT_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_MAX_LIFETIME = 1800.0  # HikariCP's default maxLifetime: 30 minutes
DEFAULT_DEAD_PEER_TIMEOUT = 10.0  # TCP keepalive + TCP_USER_TIMEOUT (pool/tcp.py); 0: OS defaults


@dataclasses.dataclass(frozen=True)
class PoolOptions:
    """A pool's settings, checked on creation. ``connect_timeout=None`` takes the URL's
    ``connect_timeout`` (else 5 s); ``max_lifetime=None`` means 30 minutes;
    ``dead_peer_timeout=0`` leaves TCP keepalive's timings to the OS (2 hours on Linux)."""

    min_idle: int = 1
    max_size: int = 4
    checkout_timeout: float = DEFAULT_CHECKOUT_TIMEOUT
    connect_timeout: float | None = None
    max_lifetime: float | None = None
    lifetime_jitter: float = 0.1
    init_sql: tuple[str, ...] = ()
    autocommit: bool = False
    leak_timeout: float | None = None
    connect_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    dead_peer_timeout: float = DEFAULT_DEAD_PEER_TIMEOUT

    def __post_init__(self) -> None:
        _check_sizes(self.min_idle, self.max_size)
        POSITIVE_SECONDS.check("checkout_timeout", self.checkout_timeout)
        for name in ("connect_timeout", "max_lifetime", "leak_timeout"):
            if getattr(self, name) is not None:
                POSITIVE_SECONDS.check(name, getattr(self, name))
        FRACTION.check("lifetime_jitter", self.lifetime_jitter)
        NON_NEGATIVE_NUMBER.check("dead_peer_timeout", self.dead_peer_timeout)
        object.__setattr__(self, "init_sql", _check_init_sql(self.init_sql))
        object.__setattr__(self, "autocommit", bool(self.autocommit))
        if not isinstance(self.connect_args, Mapping):
            raise ConfigError(f"connect_args must be a mapping, got {self.connect_args!r}")
        object.__setattr__(self, "connect_args", dict(self.connect_args))

    def resolved(self, url: DatabaseURL) -> ResolvedOptions:
        """These options with every default filled in for ``url``: ``connect_timeout`` from the
        URL (else 5 s), ``max_lifetime`` 30 minutes."""
        values = {name: getattr(self, name) for name in self.names()}
        values["connect_timeout"] = float(
            self.connect_timeout or url.options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        )
        values["max_lifetime"] = float(self.max_lifetime or DEFAULT_MAX_LIFETIME)
        return ResolvedOptions(**values)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, where: str = "pool options") -> PoolOptions:
        """From a settings mapping (Django ``OPTIONS``, engine keywords); an unknown key is an
        error that lists the known ones."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ConfigError(
                f"unknown {where}: {', '.join(unknown)}; known: {', '.join(cls.names())}"
            )
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class ResolvedOptions(PoolOptions):
    """A pool's options with every default filled in for its URL: what the pool reads."""

    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_lifetime: float = DEFAULT_MAX_LIFETIME


def _check_sizes(min_idle: object, max_size: object) -> None:
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
        raise ConfigError(f"max_size must be a positive integer, got {max_size!r}")
    if isinstance(min_idle, bool) or not isinstance(min_idle, int) or not 0 <= min_idle <= max_size:
        raise ConfigError(
            f"min_idle must be an integer between 0 and max_size={max_size}, got {min_idle!r}"
        )


def _check_init_sql(statements: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(statements, str):
        statements = (statements,)
    result = tuple(statements)
    if not all(isinstance(statement, str) and statement.strip() for statement in result):
        raise ConfigError("init_sql must be a sequence of non-empty SQL strings")
    return result
