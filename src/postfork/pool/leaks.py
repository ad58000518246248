"""The leak watch: leases held longer than ``leak_timeout``, each reported once.

Found under the pool's lock (it scans the busy slots), logged outside it (logging takes locks
of its own and may write to a slow stream).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .slot import Slot
from .state import SlotState

log = logging.getLogger("postfork.pool")

_IN_USE = SlotState.IN_USE


class LeakWatch:
    """Which leases outlived ``timeout`` (None: nobody watches, and a scan costs one test)."""

    __slots__ = ("reports", "timeout")

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.reports: list[tuple[int, float]] = []  # (connection id, seconds held), to log

    def scan(self, slots: Iterable[Slot], now: float) -> None:
        """Under the pool's lock: note each lease held past the timeout, once per lease."""
        timeout = self.timeout
        if timeout is None:
            return
        for slot in slots:
            held = now - slot.leased_at
            if slot.state is _IN_USE and held > timeout and not slot.leak_reported:
                slot.leak_reported = True
                self.reports.append((slot.connection_id, held))

    def log(self) -> None:
        """Outside the lock: one warning per lease found."""
        while self.reports:
            connection_id, held = self.reports.pop()
            log.warning(
                "connection %d has been leased for %.1fs (leak_timeout=%gs): is a lease never "
                "closed?",
                connection_id,
                held,
                self.timeout,
            )
