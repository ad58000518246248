"""A pool slot's lifecycle, as one explicit table of states and transitions.

A slot is the long-lived record of one server session (SQLAlchemy's ``_ConnectionRecord``); a
lease is the short-lived checkout of it. Every state change goes through ``Slot.move``, and a
transition that is not in the table raises ``StateError`` instead of corrupting the pool.
"""

from __future__ import annotations

import enum
import os
import select
from collections.abc import Callable
from typing import Any

from ._drivers import point_fd_at_devnull
from .errors import StateError


class SlotState(enum.Enum):
    __hash__ = (
        object.__hash__
    )  # members are singletons; Enum's own hash runs Python code per lookup

    CONNECTING = "connecting"  # capacity reserved, connect in progress (outside the lock)
    IDLE = "idle"  # on the LIFO idle stack
    IN_USE = "in_use"  # leased, or being liveness-checked before a lease
    CLOSED = "closed"  # discarded by the process that opened it (closed cleanly)
    ABANDONED = "abandoned"  # inherited across fork(): fd points at /dev/null, never used again


class Event(enum.Enum):
    __hash__ = object.__hash__

    CONNECTED_FOR_LEASE = "connected_for_lease"
    CONNECTED_FOR_IDLE = "connected_for_idle"
    CONNECT_FAILED = "connect_failed"
    CHECKOUT = "checkout"
    CHECKIN = "checkin"
    DISCARD = "discard"
    FORK = "fork"


_POLL_DEAD = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | select.POLLNVAL
_LIVE_STATES = frozenset({SlotState.IDLE, SlotState.IN_USE})
S, E = SlotState, Event
TRANSITIONS: dict[tuple[SlotState, Event], SlotState] = {
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
del S, E


def _unknown_transaction_state() -> bool:
    return True  # not connected yet: a rollback is always the safe answer


class Slot:
    """One server session owned by one process; knows its fd, its deadline and its generation."""

    __slots__ = (
        "conn",
        "connection_id",
        "created",
        "discard_reason",
        "expires",
        "fd",
        "generation",
        "in_transaction",
        "leak_reported",
        "leased_at",
        "owner_pid",
        "poller",
        "state",
    )

    def __init__(self, generation: int) -> None:
        self.state = SlotState.CONNECTING
        self.generation = generation
        self.owner_pid = os.getpid()
        self.conn: Any = None
        self.fd = -1
        self.connection_id = 0
        self.created = 0.0
        self.expires = float("inf")
        self.leased_at = 0.0
        self.leak_reported = False
        self.discard_reason = ""
        self.poller: Any = None
        self.in_transaction: Callable[[], bool] = _unknown_transaction_state

    def move(self, event: Event) -> None:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise StateError(
                f"illegal slot transition: {event.value} in state {self.state.value}"
            ) from None

    def attach(
        self, conn: Any, fd: int, connection_id: int, in_transaction: Callable[[], bool]
    ) -> None:
        self.conn, self.fd, self.connection_id = conn, fd, connection_id
        self.in_transaction = in_transaction
        self.poller = select.poll()
        self.poller.register(fd, _POLL_DEAD)

    def server_spoke(self) -> bool:
        """Zero-round-trip liveness: an idle session's socket is readable only if the server
        closed it or sent an error (KILL, shutdown, timeout)."""
        return bool(self.poller.poll(0))

    def __del__(self, _getpid: Any = os.getpid, _abandon: Any = point_fd_at_devnull) -> None:
        # Safety net for a child forked from C (uWSGI) that exits without ever touching the pool:
        # the driver object is about to be collected and would send COM_QUIT on the parent's socket.
        # (Defaults bind the functions: module globals may be gone during interpreter teardown.)
        if self.owner_pid != _getpid() and self.state in _LIVE_STATES:
            _abandon(self.fd)
            self.state = SlotState.ABANDONED

    def __repr__(self) -> str:
        return f"<Slot id={self.connection_id} {self.state.value} gen={self.generation}>"
