"""What a pool counts, and the shape of ``Pool.stats()``."""

from __future__ import annotations

import dataclasses
from typing import TypedDict

from .state import DiscardReason

DISCARD_REASONS = tuple(reason.value for reason in DiscardReason)


class PoolStats(TypedDict):
    """A snapshot of one process's pool (a plain dict: JSON-ready, no password in it)."""

    pid: int  # the process these figures belong to (a forked child starts from zero)
    generation: int  # forks this pool has been through
    driver: str
    url: str  # redacted
    mode: str  # serving, master or closed
    min_idle: int
    max_size: int
    closed: bool
    idle: int
    in_use: int
    connecting: int
    connects: int
    connect_errors: int
    connect_seconds: float
    checkouts: int
    waits: int  # checkouts that found the pool full and waited
    wait_seconds: float
    timeouts: int  # checkouts that gave up after checkout_timeout
    discards: dict[str, int]  # by DiscardReason value


@dataclasses.dataclass
class Counters:
    """Per-process counters, changed under the pool's lock."""

    connects: int = 0
    connect_errors: int = 0
    connect_seconds: float = 0.0
    checkouts: int = 0
    waits: int = 0
    wait_seconds: float = 0.0
    timeouts: int = 0
    discards: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(DISCARD_REASONS, 0)
    )

    def snapshot(self) -> dict[str, object]:
        """A copy (``dataclasses.asdict`` deep-copies: 30x slower, and stats() may run after
        every request)."""
        copy = dict(self.__dict__)
        copy["discards"] = dict(self.discards)
        return copy
