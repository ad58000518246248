"""A request's deadline, for a database that goes silent.

A silent network (a failover that moved an address, a lost NAT entry, a host gone without a
RST) never answers and never closes, and no driver lets a query's timeout change per request.
Inside ``with postfork.deadline(seconds):`` a checkout waits and connects only within what is
left, and a query still running when the deadline passes is cut off: a watchdog thread shuts
the leased connection's socket down, so the driver's blocked read returns at once with its own
"lost connection" error, and the pool discards that connection. One thread per process, started
at the first watched checkout; a checkout outside any deadline costs one ContextVar read.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import os
import socket
import threading
import time

from ..drivers.base import borrowed_socket
from ..errors import ConfigError
from ..threads import start_daemon

# a ContextVar, not a threading.local: its get() is one C call, no exception when unset
_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "postfork_deadline", default=None
)


class Deadline:
    """When the current request must be answered; ``exceeded`` once the watchdog cut a query."""

    __slots__ = ("exceeded", "expires", "seconds", "watched")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.exceeded = False
        self.watched: list[int] = []  # the watchdog's tokens for leases taken under it

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def __repr__(self) -> str:
        return f"<Deadline {self.seconds:g}s, {self.remaining():.3f}s left>"


class deadline:
    """Bound the database work of the block (``with postfork.deadline(2.5):``); ``as`` gives
    the :class:`Deadline`. Nested, the earlier of the two holds. A class, not a generator-based
    context manager: it runs on every request (1.7 us instead of 2.7 here)."""

    __slots__ = ("_limit", "_outer", "_seconds", "_token")

    def __init__(self, seconds: float) -> None:
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not seconds > 0:
            raise ConfigError(f"a deadline must be a positive number of seconds, got {seconds!r}")
        self._seconds = float(seconds)

    def __enter__(self) -> Deadline:
        outer = self._outer = _current.get()
        limit = Deadline(self._seconds)
        if outer is not None and outer.expires < limit.expires:
            limit = outer
        self._limit = limit
        self._token = _current.set(limit)
        return limit

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)
        limit = self._limit
        if limit is not self._outer and limit.watched:
            # a lease that outlives the block (a persistent connection) is no longer cut off
            WATCHDOG.unwatch_all(limit.watched)


current_deadline = _current.get  # the deadline of the block this code runs in, if any


class _Watchdog:
    """Shuts down the sockets of leases still held when their deadline passes."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int]] = []
        self._watched: dict[int, tuple[Deadline, int]] = {}
        self._tokens = itertools.count(1)
        self._sleeping_until = float("inf")
        self._thread: threading.Thread | None = None

    def watch(self, limit: Deadline, fd: int) -> int:
        if self._pid != os.getpid():  # forked: the thread and the leases stayed in the parent
            self.__init__()  # type: ignore[misc]
        with self._lock:
            token = next(self._tokens)
            self._watched[token] = (limit, fd)
            limit.watched.append(token)
            heapq.heappush(self._heap, (limit.expires, token))
            if self._thread is None:
                self._thread = start_daemon(self._run, "postfork-deadline")
            elif limit.expires < self._sleeping_until:
                self._wake.notify()
        return token

    def unwatch(self, token: int) -> bool:
        """False if the deadline already cut this lease off. After this, the watchdog never
        touches that socket."""
        with self._lock:
            return self._watched.pop(token, None) is not None

    def unwatch_all(self, tokens: list[int]) -> None:
        with self._lock:
            for token in tokens:
                self._watched.pop(token, None)

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                while self._heap and (
                    self._heap[0][1] not in self._watched or self._heap[0][0] <= now
                ):
                    _, token = heapq.heappop(self._heap)
                    entry = self._watched.pop(token, None)
                    if entry is not None:
                        entry[0].exceeded = True
                        _shut_down(entry[1])
                self._sleeping_until = self._heap[0][0] if self._heap else float("inf")
                timeout = None if not self._heap else max(self._sleeping_until - now, 0.0)
                self._wake.wait(timeout)


def _shut_down(fd: int) -> None:
    """End the session's TCP or unix stream where it stands: the blocked read sees EOF."""
    with borrowed_socket(fd) as sock, contextlib.suppress(OSError):
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)


WATCHDOG = _Watchdog()
