"""The fork-aware pool: state tables, lifetime, options, events, statistics; the decisions
(``core``) and their two shells, ``Pool``/``Lease`` (threads) and ``AsyncPool``/``AsyncLease``
(asyncio)."""

from .deadline import Deadline, current_deadline, deadline
from .events import EVENTS, PoolEvents, listen_all, remove_all
from .lease import LeaseBase
from .options import PoolOptions
from .pool import Lease, Pool
from .pool_async import AsyncLease, AsyncPool
from .slot import Slot
from .state import DiscardReason, PoolMode
from .stats import DISCARD_REASONS, PoolStats

__all__ = [
    "DISCARD_REASONS",
    "EVENTS",
    "AsyncLease",
    "AsyncPool",
    "Deadline",
    "DiscardReason",
    "Lease",
    "LeaseBase",
    "Pool",
    "PoolEvents",
    "PoolMode",
    "PoolOptions",
    "PoolStats",
    "Slot",
    "current_deadline",
    "deadline",
    "listen_all",
    "remove_all",
]
