"""How a checkout waits for a slot: the one primitive the thread pool and the asyncio pool do
not share (psycopg_pool's ``_acompat`` rule: the differences in one small module).

A waiter enlists under the pool's lock and gets a ticket, then waits on the ticket outside the
lock; whoever frees or connects a slot wakes the oldest ticket (FIFO, so no checkout starves).
After waiting, the waiter leaves under the lock and learns whether it was woken; a waiter that
gives up after being woken passes the wake-up on (``PoolCore`` does), so none is lost.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque


class ThreadWaiters:
    """Threads parked in a checkout, each on a lock of its own that the waker releases."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: deque[threading.Lock] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def enlist(self) -> threading.Lock:
        ticket = threading.Lock()
        ticket.acquire()
        self._queue.append(ticket)
        return ticket

    def leave(self, ticket: threading.Lock) -> bool:
        """True if the ticket was woken (it is no longer queued)."""
        try:
            self._queue.remove(ticket)
        except ValueError:
            return True
        return False

    def wake_one(self) -> None:
        if self._queue:
            self._queue.popleft().release()

    def wake_all(self) -> None:
        while self._queue:
            self._queue.popleft().release()

    @staticmethod
    def wait(ticket: threading.Lock, seconds: float) -> None:
        """Outside the pool's lock: until woken or ``seconds`` passed."""
        ticket.acquire(timeout=max(seconds, 0.0))


class TaskWaiters:
    """Tasks parked in a checkout, each on a future of the pool's loop that the waker
    resolves. Woken from that loop's thread only (every pool call runs there)."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def enlist(self) -> asyncio.Future[None]:
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(ticket)
        return ticket

    def leave(self, ticket: asyncio.Future[None]) -> bool:
        try:
            self._queue.remove(ticket)
        except ValueError:
            return not ticket.cancelled()  # a cancelled (timed-out) one was skipped, not woken
        return False

    def wake_one(self) -> None:
        while self._queue:
            ticket = self._queue.popleft()
            if not ticket.done():  # a timed-out waiter's ticket is cancelled: skip it
                ticket.set_result(None)
                return

    def wake_all(self) -> None:
        while self._queue:
            ticket = self._queue.popleft()
            if not ticket.done():
                ticket.set_result(None)

    @staticmethod
    async def wait(ticket: asyncio.Future[None], seconds: float) -> None:
        """Not ``asyncio.wait_for``: on 3.11 it swallows a cancel that arrives as the ticket is
        woken. A ticket left pending here is removed by ``leave()``."""
        await asyncio.wait((ticket,), timeout=max(seconds, 0.0))
