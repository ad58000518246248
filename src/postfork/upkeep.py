"""Pool upkeep off the request path, for every installed pool, without the app writing any.

``maintain()`` retires idle connections in the last 10% of their life and refills to
``min_idle``; done on a request, that is a connect the request pays for. It runs:

- after each response, where the server says when that is (``response_hooks.py``);
- and in each worker a daemon thread sleeps until the next connection enters its refresh
  window, so an idle worker's connections are replaced too, and short lifetimes are caught in
  time. Never in a master: a thread there would be forked into every worker.

The same thread runs postfork's other periodic work in a worker (``every()``: the metrics
directory's sweep). One thread, not one per job: when a worker exits, every thread it has must
get a CPU to die before its master hears of the exit, and on busy cores each one was measured
to add milliseconds to the respawn.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from . import fork
from .threads import start_daemon

log = logging.getLogger("postfork.upkeep")

MAX_SLEEP = 5.0  # the timer re-reads the pools at least this often (new pools, a changed mode)
MIN_SLEEP = 0.05  # never a busy loop, even when maintenance is overdue
RETRY_SLEEP = 1.0  # after maintain() failed (the database is down): try again in a second


class Maintained(Protocol):
    """What upkeep needs of a pool (a :class:`~postfork.Pool`, a topology's ``Cluster``)."""

    @property
    def degraded(self) -> bool: ...

    def maintain(self, *, connect: bool = True) -> None: ...

    def maintenance_due_in(self) -> float | None: ...


@dataclass
class _Periodic:
    name: str
    period: Callable[[], float]  # seconds until the next run, asked after each run
    task: Callable[[], object]
    due: float = 0.0  # monotonic


class Upkeep:
    """The installed pools' maintenance: after responses and on a per-worker timer."""

    def __init__(self) -> None:
        self._pools: weakref.WeakSet[Maintained] = weakref.WeakSet()
        self._timer_started = fork.OncePerProcess()
        self._wake = threading.Event()
        self._periodic: dict[str, _Periodic] = {}

    def add(self, pool: Maintained) -> None:
        self._pools.add(pool)
        self._wake.set()  # the timer re-reads its deadlines

    def after_response(self) -> None:
        """One maintain() per installed pool; never raises (the next request reports). A
        ``degraded`` pool (its database failed to connect or dropped a connection in use) is
        refilled by the timer thread instead: waiting here on a silent database would hold
        the next request for a whole ``connect_timeout``."""
        for pool in list(self._pools):
            degraded = pool.degraded
            try:
                pool.maintain(connect=not degraded)
            except Exception as exc:
                log.debug("pool upkeep after a response failed: %r", exc)
            if degraded:
                self._wake.set()

    def every(self, name: str, period: Callable[[], float], task: Callable[[], object]) -> None:
        """Run ``task`` on this process's timer thread, ``period()`` seconds after each run (the
        first after one period); starts the thread here if it is not running. A task's failure
        is logged and it runs again a period later. Call it in a worker, not in a master."""
        self._periodic[name] = _Periodic(name, period, task, time.monotonic() + period())
        self.start_timer()
        self._wake.set()

    def start_timer(self) -> None:
        """In a worker (or a process without a pre-fork server): the timer, once per process."""
        if self._timer_started.first():
            self._wake = threading.Event()  # an inherited Event's lock may be held: a new one
            start_daemon(self._run_timer, "postfork-upkeep")

    def _run_timer(self) -> None:
        while True:  # a daemon thread: it ends with its process (and is never forked)
            self._wake.wait(self._sleep())
            self._wake.clear()
            started = time.monotonic()
            self._run_periodic(started)
            failed = not self._maintain_due()
            if failed:
                time.sleep(max(0.0, RETRY_SLEEP - (time.monotonic() - started)))

    def _sleep(self) -> float:
        pools = list(self._pools)
        dues = [due for pool in pools if (due := pool.maintenance_due_in()) is not None]
        now = time.monotonic()
        dues += [periodic.due - now for periodic in list(self._periodic.values())]
        return min(MAX_SLEEP, max(MIN_SLEEP, min(dues, default=MAX_SLEEP)))

    def _run_periodic(self, now: float) -> None:
        for periodic in list(self._periodic.values()):
            if periodic.due > now:
                continue
            try:
                periodic.task()
            except Exception as exc:  # a full disk, a removed directory: say so, go on
                log.warning("periodic task %s failed: %r", periodic.name, exc)
            periodic.due = time.monotonic() + periodic.period()

    def _maintain_due(self) -> bool:
        ok = True
        for pool in list(self._pools):
            due = pool.maintenance_due_in()
            if due is None or due > 0.0:
                continue
            try:
                pool.maintain()
            except Exception as exc:
                log.debug("timed pool upkeep failed: %r", exc)
                ok = False
        return ok


upkeep = Upkeep()
