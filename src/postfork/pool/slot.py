"""One pooled server session: its connection, fd, deadline and generation, and its liveness.

Its state changes only through :meth:`Slot.move`, which follows ``state.SLOT_TRANSITIONS``.
Listeners of the pool's ``connect`` and ``discard`` events receive the slot: ``connection``
(the DB-API connection), ``connection_id``, ``connect_seconds`` and ``info``, a dict that lives
as long as the server session (the ORM integrations keep their per-session state there).
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable
from typing import Any

from ..drivers import DriverBase, point_fd_at_devnull
from ..drivers.base import POLL_DEAD
from .state import (
    LIVE_SLOT_STATES,
    SLOT_TRANSITIONS,
    DiscardReason,
    SlotEvent,
    SlotState,
    transition,
)


def _unknown_transaction_state() -> bool:
    return True  # not connected yet: a rollback is always the safe answer


def _not_connected() -> bool:
    return True  # a slot without a connection is never handed out as a live one


class Slot:
    """One server session owned by one process; knows its fd, its deadline and its generation."""

    __slots__ = (
        "conn",
        "connect_seconds",
        "connection_id",
        "created",
        "discard_reason",
        "expires",
        "fd",
        "generation",
        "in_transaction",
        "info",
        "leak_reported",
        "leased_at",
        "owner_pid",
        "poller",
        "spoke",
        "state",
        "warming",
    )

    def __init__(self, generation: int) -> None:
        self.state = SlotState.CONNECTING
        self.generation = generation
        self.owner_pid = os.getpid()
        self.conn: Any = None
        self.fd = -1
        self.connection_id = 0
        self.connect_seconds = 0.0
        self.info: dict[str, Any] = {}  # per-session data, as long as this server session lives
        self.created = 0.0
        self.expires = float("inf")
        self.leased_at = 0.0
        self.leak_reported = False
        self.discard_reason: DiscardReason | None = None
        self.poller: Any = None
        self.spoke: Callable[[], Any] = _not_connected
        self.in_transaction: Callable[[], bool] = _unknown_transaction_state
        self.warming = False  # reserved by warm(): will be idle once connected

    @property
    def connection(self) -> Any:
        """The DB-API connection (None once closed or abandoned)."""
        return self.conn

    def move(self, event: SlotEvent, _table: Any = SLOT_TRANSITIONS) -> None:
        # The table is bound as a default: __del__ moves slots during interpreter teardown,
        # when module globals may already be gone.
        try:
            self.state = _table[(self.state, event)]
        except KeyError:
            transition(_table, self.state, event, "slot")  # raises StateError naming it

    def attach(self, conn: Any, fd: int, driver: DriverBase) -> None:
        """The new session's connection, and the probes built once for it."""
        self.conn, self.fd, self.connection_id = conn, fd, driver.connection_id(conn)
        self.in_transaction = driver.transaction_probe(conn)
        self.poller = select.poll()
        self.poller.register(fd, POLL_DEAD)
        self.spoke = driver.liveness_probe(conn, self.poller)

    def server_spoke(self) -> bool:
        """Zero-round-trip liveness: an idle session's server closed it or sent an error
        (KILL, shutdown, timeout); see ``DriverBase.liveness_probe``."""
        return bool(self.spoke())

    def __del__(
        self,
        _getpid: Any = os.getpid,
        _abandon: Any = point_fd_at_devnull,
        _live: Any = LIVE_SLOT_STATES,
        _fork: Any = SlotEvent.FORK,
    ) -> None:
        # Safety net for a child forked from C (uWSGI) that exits without ever touching the pool:
        # the driver object is about to be collected and would send COM_QUIT on the parent's socket.
        # (Defaults bind what it needs: module globals may be gone during interpreter teardown.)
        if self.owner_pid != _getpid() and self.state in _live:
            _abandon(self.fd)
            self.move(_fork)

    def __repr__(self) -> str:
        return f"<Slot id={self.connection_id} {self.state.value} gen={self.generation}>"
