"""Every state the pool moves through, as tables in one file (h11's ``_state.py`` rule): a
slot's lifecycle, the pool's mode, and why a connection was discarded.

A slot is the long-lived record of one server session (SQLAlchemy's ``_ConnectionRecord``); a
lease is the short-lived checkout of it. Every change of a slot's state or the pool's mode goes
through :func:`transition`; an event that the table does not allow raises ``StateError``
instead of corrupting the pool.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from ..errors import StateError


class SlotState(enum.Enum):
    __hash__ = object.__hash__  # members are singletons; Enum's own hash runs Python per lookup

    CONNECTING = "connecting"  # capacity reserved, connect in progress (outside the lock)
    IDLE = "idle"  # on the LIFO idle stack
    IN_USE = "in_use"  # leased, or being liveness-checked before a lease
    CLOSED = "closed"  # discarded by the process that opened it (closed cleanly)
    ABANDONED = "abandoned"  # inherited across fork(): fd points at /dev/null, never used again


class SlotEvent(enum.Enum):
    __hash__ = object.__hash__

    CONNECTED_FOR_LEASE = "connected_for_lease"
    CONNECTED_FOR_IDLE = "connected_for_idle"
    CONNECT_FAILED = "connect_failed"
    CHECKOUT = "checkout"
    CHECKIN = "checkin"
    DISCARD = "discard"
    FORK = "fork"


S, E = SlotState, SlotEvent
SLOT_TRANSITIONS: dict[tuple[SlotState, SlotEvent], SlotState] = {
    (S.CONNECTING, E.CONNECTED_FOR_LEASE): S.IN_USE,
    (S.CONNECTING, E.CONNECTED_FOR_IDLE): S.IDLE,
    (S.CONNECTING, E.CONNECT_FAILED): S.CLOSED,
    (S.CONNECTING, E.FORK): S.ABANDONED,
    (S.IDLE, E.CHECKOUT): S.IN_USE,
    (S.IDLE, E.DISCARD): S.CLOSED,
    (S.IDLE, E.FORK): S.ABANDONED,
    (S.IN_USE, E.CHECKIN): S.IDLE,
    (S.IN_USE, E.DISCARD): S.CLOSED,
    (S.IN_USE, E.FORK): S.ABANDONED,
}
LIVE_SLOT_STATES = frozenset({S.IDLE, S.IN_USE})  # hold a connection this process may use
del S, E


class PoolMode(enum.Enum):
    __hash__ = object.__hash__

    SERVING = "serving"  # hands out connections, keeps min_idle open and idle
    MASTER = "master"  # a server's master: keeps none idle, so workers inherit nothing
    CLOSED = "closed"  # hands out nothing; leased connections close when returned


class PoolEvent(enum.Enum):
    __hash__ = object.__hash__

    ENTER_MASTER = "enter_master"  # install() found it runs in a master (or gunicorn's pre_fork)
    FORK = "fork"  # this process is a new child: it serves for itself
    CLOSE = "close"
    OPEN = "open"  # AsyncPool.open(): serves again after close() (an ASGI app's next lifespan)


M, P = PoolMode, PoolEvent
POOL_TRANSITIONS: dict[tuple[PoolMode, PoolEvent], PoolMode] = {
    (M.SERVING, P.ENTER_MASTER): M.MASTER,
    (M.MASTER, P.ENTER_MASTER): M.MASTER,
    (M.CLOSED, P.ENTER_MASTER): M.CLOSED,
    (M.SERVING, P.FORK): M.SERVING,
    (M.MASTER, P.FORK): M.SERVING,
    (M.CLOSED, P.FORK): M.CLOSED,
    (M.SERVING, P.CLOSE): M.CLOSED,
    (M.MASTER, P.CLOSE): M.CLOSED,
    (M.CLOSED, P.CLOSE): M.CLOSED,
    (M.SERVING, P.OPEN): M.SERVING,
    (M.MASTER, P.OPEN): M.MASTER,
    (M.CLOSED, P.OPEN): M.SERVING,
}
del M, P


class DiscardReason(enum.Enum):
    """Why a connection left the pool (``stats()["discards"]`` counts each by its value)."""

    __hash__ = object.__hash__

    STALE = "stale"  # idle, and the server had closed it or sent an error (poll() said so)
    LIFETIME = "lifetime"  # reached its lifetime (below the server's wait_timeout)
    ERROR = "error"  # returned after a connection-level error, an interrupt or invalidate()
    FORK = "fork"  # inherited across fork(): abandoned without a byte sent
    CLOSED = "closed"  # the pool was closed (or holds none idle in a master)


StateT = TypeVar("StateT", bound=enum.Enum)
EventT = TypeVar("EventT", bound=enum.Enum)


def transition(
    table: dict[tuple[StateT, EventT], StateT], state: StateT, event: EventT, what: str
) -> StateT:
    """The state after ``event``, or StateError: the table is the whole truth."""
    try:
        return table[(state, event)]
    except KeyError:
        raise StateError(
            f"illegal {what} transition: {event.value} in state {state.value}"
        ) from None
