"""Fork lifecycle: every live pool learns about a fork the moment it happens.

``os.register_at_fork`` covers ``os.fork()`` and ``multiprocessing``; forks done from C (uWSGI)
skip it, so each pool also compares pids on every call and at exit. Pools are held weakly: the
registry never keeps a pool alive.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Protocol

log = logging.getLogger("postfork.fork")


class ForkAware(Protocol):
    def _before_fork(self) -> None: ...
    def _after_fork_in_parent(self) -> None: ...
    def _ensure_process(self) -> None: ...


_pools: weakref.WeakSet[ForkAware] = weakref.WeakSet()
# Serialises the post-fork reset in a child where several threads notice the new pid at once.
reset_lock = threading.Lock()


def register(pool: ForkAware) -> None:
    _pools.add(pool)


def _live_pools() -> list[ForkAware]:
    return list(_pools)


def _before_fork() -> None:
    # Take every pool's lock so no pool is forked half-way through a state change.
    for pool in _live_pools():
        pool._before_fork()


def _after_fork_in_parent() -> None:
    for pool in _live_pools():
        pool._after_fork_in_parent()


def _after_fork_in_child() -> None:
    global reset_lock
    reset_lock = threading.Lock()
    for pool in _live_pools():
        pool._ensure_process()


def _at_exit() -> None:
    # A child forked from C that never used its pools: abandon inherited connections before
    # interpreter teardown collects them (which would send COM_QUIT on the parent's sockets).
    for pool in _live_pools():
        try:
            pool._ensure_process()
        except Exception:
            log.exception("abandoning inherited connections at exit failed")


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
atexit.register(_at_exit)
