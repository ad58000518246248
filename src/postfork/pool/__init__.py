"""The fork-aware pool: state tables, lifetime, options, events, statistics, Pool and Lease."""

from .deadline import Deadline, current_deadline, deadline
from .events import EVENTS, PoolEvents, listen_all, remove_all
from .lease import Lease
from .options import PoolOptions
from .pool import Pool
from .slot import Slot
from .state import DiscardReason, PoolMode
from .stats import DISCARD_REASONS, PoolStats

__all__ = [
    "DISCARD_REASONS",
    "EVENTS",
    "Deadline",
    "DiscardReason",
    "Lease",
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
