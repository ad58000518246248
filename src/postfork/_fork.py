"""Fork lifecycle: every live pool, and every listener (``install()``), learns about a fork
the moment it happens in the child.

``os.register_at_fork`` covers ``os.fork()``, gunicorn and ``multiprocessing``; uWSGI forks
from C and skips it, so the same child hook is chained onto uWSGI's post-fork hook, and each
pool also compares pids on every call and at exit. Pools and listeners are held weakly: the
registry never keeps anything alive.
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


class AfterForkListener(Protocol):
    def after_fork(self) -> None: ...


_pools: weakref.WeakSet[ForkAware] = weakref.WeakSet()
_listeners: weakref.WeakSet[AfterForkListener] = weakref.WeakSet()
_handled_pid = os.getpid()  # the child hook runs once per process, whichever path calls it
_uwsgi_hooked = False
# Serialises the post-fork reset in a child where several threads notice the new pid at once.
reset_lock = threading.Lock()


def register(pool: ForkAware) -> None:
    _pools.add(pool)


def add_listener(listener: AfterForkListener) -> None:
    """Call ``listener.after_fork()`` in every child, after its pools were reset."""
    global _uwsgi_hooked
    _listeners.add(listener)
    if not _uwsgi_hooked:
        from ._servers import hook_uwsgi_post_fork

        _uwsgi_hooked = hook_uwsgi_post_fork(child_started)


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
    child_started()


def child_started() -> None:
    """In a new child: drop inherited connections, then run the listeners (warm-up)."""
    global _handled_pid
    if _handled_pid == os.getpid():
        return
    _handled_pid = os.getpid()
    for pool in _live_pools():
        pool._ensure_process()
    for listener in list(_listeners):
        try:
            listener.after_fork()
        except Exception:  # a failed warm-up must never kill the worker
            log.exception("post-fork listener %r failed", listener)


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
