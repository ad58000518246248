"""Fork lifecycle: every live pool, and every listener (``install()``), learns about a fork
the moment it happens in the child.

``os.register_at_fork`` covers ``os.fork()``, gunicorn and ``multiprocessing``; uWSGI forks
from C and skips it, so the same child hook is chained onto uWSGI's post-fork hook, and each
pool also compares pids on every call and at exit. Pools and listeners are held weakly: the
registry never keeps anything alive.
"""

from __future__ import annotations

import atexit
import itertools
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
    def _close_at_exit(self) -> None: ...


class AfterForkListener(Protocol):
    def after_fork(self) -> None: ...


class ExitListener(Protocol):
    def at_exit(self) -> None: ...


_pools: weakref.WeakSet[ForkAware] = weakref.WeakSet()
# In registration order (a warm-up registered first runs first), held weakly.
_listeners: weakref.WeakValueDictionary[int, AfterForkListener] = weakref.WeakValueDictionary()
_listener_ids = itertools.count()
_exit_listeners: weakref.WeakSet[ExitListener] = weakref.WeakSet()
_handled_pid = os.getpid()  # the child hook runs once per process, whichever path calls it
_uwsgi_hooked = False
_exited_pid = 0
# Serialises the post-fork reset in a child where several threads notice the new pid at once.
reset_lock = threading.Lock()


def register(pool: ForkAware) -> None:
    _pools.add(pool)
    _hook_uwsgi_once()


def add_listener(listener: AfterForkListener) -> None:
    """Call ``listener.after_fork()`` in every child, after its pools were reset, in the order
    the listeners were added."""
    if listener not in _listeners.values():
        _listeners[next(_listener_ids)] = listener
    _hook_uwsgi_once()


def add_exit_listener(listener: ExitListener) -> None:
    """Call ``listener.at_exit()`` when this process exits, before its pools are closed
    (also where uWSGI skips interpreter teardown: its own atexit hook runs it)."""
    _exit_listeners.add(listener)
    _hook_uwsgi_once()


def _hook_uwsgi_once() -> None:
    """Inside uWSGI: its post-fork hook runs the child hook (its C fork skips Python's), and
    its ``atexit`` hook runs the exit hook (``skip-atexit-teardown`` skips Python's)."""
    global _uwsgi_hooked
    if not _uwsgi_hooked:
        from ._servers import hook_uwsgi

        _uwsgi_hooked = hook_uwsgi(post_fork=child_started, at_exit=_at_exit)


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
    from ._servers import drop_inherited_accelerator

    drop_inherited_accelerator()
    for pool in _live_pools():
        pool._ensure_process()
    for listener in list(_listeners.values()):
        try:
            listener.after_fork()
        except Exception:  # a failed warm-up must never kill the worker
            log.exception("post-fork listener %r failed", listener)


def _at_exit() -> None:
    global _exited_pid
    if _exited_pid == os.getpid():
        return  # uWSGI may run it twice: its own atexit hook, then Python's during teardown
    _exited_pid = os.getpid()
    for listener in list(_exit_listeners):
        try:
            listener.at_exit()
        except Exception:
            log.exception("exit listener %r failed", listener)
    # A child forked from C that never used its pools: abandon inherited connections before
    # interpreter teardown collects them (which would send COM_QUIT on the parent's sockets).
    # Then close this process's own connections cleanly: a server that skips interpreter
    # teardown (uWSGI skip-atexit-teardown) would otherwise leave them to be reset.
    for pool in _live_pools():
        try:
            pool._close_at_exit()
        except Exception:
            log.exception("closing connections at exit failed")


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
atexit.register(_at_exit)
