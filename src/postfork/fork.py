"""Fork lifecycle: every live pool, and every listener (``install()``), learns about a fork
the moment it happens in the child.

``os.register_at_fork`` covers ``os.fork()``, gunicorn and ``multiprocessing``; uWSGI forks
from C and skips it, so the same child hook is chained onto uWSGI's post-fork hook, and each
pool also compares pids on every call and at exit. Pools and listeners are held weakly: the
registry never keeps anything alive.
"""

from __future__ import annotations

import atexit

# The child's listeners may run code that hands work to a thread pool (Django's ASGI handler
# warming a worker, asyncio's run_in_executor). The standard library's thread pools re-create
# their module lock in the child in an at-fork hook of their own, and those hooks run in
# registration order: that module is imported (its hook registered) before this one's.
import concurrent.futures.thread  # noqa: F401
import gc
import itertools
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from .servers import uwsgi
from .stop_signals import HeldStopSignals, leave_to_default, obey

log = logging.getLogger("postfork.fork")


class ForkHooks(Protocol):
    """What a pool gives the fork lifecycle: one object whose methods are named for the moment
    they run (``pool.core.PoolForkHooks``); ``owner`` is its pool (None once collected)."""

    @property
    def owner(self) -> object | None: ...

    def before_fork(self) -> None: ...

    def after_fork_in_parent(self) -> None: ...

    def after_fork_in_child(self) -> None: ...

    def at_exit(self, wait: float) -> None: ...


class AfterForkListener(Protocol):
    def after_fork(self) -> None: ...


class ExitListener(Protocol):
    def at_exit(self) -> None: ...


class MasterListener(Protocol):
    def before_workers_fork(self) -> None: ...


_hooks: weakref.WeakSet[ForkHooks] = weakref.WeakSet()
# In registration order (a warm-up registered first runs first), held weakly.
_listeners: weakref.WeakValueDictionary[int, AfterForkListener] = weakref.WeakValueDictionary()
_listener_ids = itertools.count()
_exit_listeners: weakref.WeakSet[ExitListener] = weakref.WeakSet()
_master_listeners: weakref.WeakSet[MasterListener] = weakref.WeakSet()
T = TypeVar("T")


class OncePerProcess:
    """True the first time it is asked in each process: a forked child starts afresh."""

    __slots__ = ("_pid",)

    def __init__(self, *, done_here: bool = False) -> None:
        self._pid = os.getpid() if done_here else 0

    def first(self) -> bool:
        pid = os.getpid()
        if self._pid == pid:
            return False
        self._pid = pid
        return True


class PerProcess(Generic[T]):
    """A value that belongs to one process: a forked child gets a fresh one from ``factory``
    (request counters, per-worker metrics state) instead of its parent's."""

    __slots__ = ("_factory", "_pid", "_value")

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._pid = os.getpid()
        self._value = factory()

    def get(self, _getpid: Callable[[], int] = os.getpid) -> T:
        if self._pid != _getpid():
            self._pid, self._value = _getpid(), self._factory()
        return self._value

    @property
    def pid(self) -> int:
        """The process the current value belongs to."""
        return self._pid


_child_hook = OncePerProcess(done_here=True)  # runs once per process, whichever path calls it
_freeze_gc = False  # gc.freeze() first thing in each child (set in a master by install())
_exit_hook = OncePerProcess()
_uwsgi_hooked = False
# Serialises the post-fork reset in a child where several threads notice the new pid at once.
reset_lock = threading.Lock()


def register(hooks: ForkHooks) -> None:
    """Call a pool's hooks at each fork and at exit (held weakly: its pool holds them)."""
    _hooks.add(hooks)
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


def add_master_listener(listener: MasterListener) -> None:
    """Call ``listener.before_workers_fork()`` in a master before it forks workers (from
    ``install()`` there, and gunicorn's ``pre_fork``): an ORM gives back what it holds, so the
    pools can close it and no worker inherits a session."""
    _master_listeners.add(listener)


def before_workers_fork() -> None:
    for listener in list(_master_listeners):
        try:
            listener.before_workers_fork()
        except Exception:
            log.exception("before-fork listener %r failed", listener)


def _hook_uwsgi_once() -> None:
    """Inside uWSGI: its post-fork hook runs the child hook (its C fork skips Python's), and
    its ``atexit`` hook runs the exit hook (``skip-atexit-teardown`` skips Python's)."""
    global _uwsgi_hooked
    if not _uwsgi_hooked:
        _uwsgi_hooked = uwsgi.hook(post_fork=child_started, at_exit=process_exiting)


def live_pools() -> list[object]:
    """Every pool of this process that is still alive."""
    return [pool for hooks in list(_hooks) if (pool := hooks.owner) is not None]


def _before_fork() -> None:
    # Take every pool's lock so no pool is forked half-way through a state change.
    for hooks in list(_hooks):
        hooks.before_fork()


def _after_fork_in_parent() -> None:
    for hooks in list(_hooks):
        hooks.after_fork_in_parent()


def _after_fork_in_child() -> None:
    global reset_lock
    reset_lock = threading.Lock()
    child_started()


def freeze_gc_in_children(enabled: bool = True) -> None:
    """Make every child forked from here call ``gc.freeze()`` before anything else: the objects
    it inherited move to the collector's permanent generation, so its collections never visit
    them, never write their headers, and never copy the pages they sit on."""
    global _freeze_gc
    _freeze_gc = enabled


def child_started() -> None:
    """In a new child: drop inherited connections, then run the listeners (warm-up). A stop
    signal sent meanwhile, from the first step on, is obeyed after them (``stop_signals.py``)."""
    if not _child_hook.first():
        return
    with HeldStopSignals() as held:
        if _freeze_gc:
            gc.freeze()
        uwsgi.drop_inherited_accelerator()
        for hooks in list(_hooks):
            hooks.after_fork_in_child()
        for listener in list(_listeners.values()):
            try:
                listener.after_fork()
            except Exception:  # a failed warm-up must never kill the worker
                log.exception("post-fork listener %r failed", listener)
        received = held.received()
        if received is not None:  # still held: a second stop signal cannot cut the exit
            log.info(
                "pid %d: %s arrived while this worker set itself up: leaving as asked",
                os.getpid(),
                received.name,
            )
            process_exiting(orderly=True)
            obey(received)
        leave_to_default(uwsgi.stop_signals_still_the_masters())  # until the worker's own


# how long an orderly exit waits for a pool's lock held by another thread (the upkeep's)
ORDERLY_EXIT_LOCK_WAIT = 1.0


def process_exiting(orderly: bool = False) -> None:
    """This process is leaving: exit listeners, then its pools (also from atexit and uWSGI's
    own exit hook; it runs once). ``orderly``: called between requests, never from a signal
    handler (a recycled worker), so closing may wait for a lock another thread holds; without
    it a pool busy at that instant leaves its connection for the server to count aborted."""
    if not _exit_hook.first():
        return  # uWSGI may run it twice: its own atexit hook, then Python's during teardown
    for listener in list(_exit_listeners):
        try:
            listener.at_exit()
        except Exception:
            log.exception("exit listener %r failed", listener)
    # A child forked from C that never used its pools: abandon inherited connections before
    # interpreter teardown collects them (which would send COM_QUIT on the parent's sockets).
    # Then close this process's own connections cleanly: a server that skips interpreter
    # teardown (uWSGI skip-atexit-teardown) would otherwise leave them to be reset.
    for hooks in list(_hooks):
        try:
            hooks.at_exit(ORDERLY_EXIT_LOCK_WAIT if orderly else 0.0)
        except Exception:
            log.exception("closing connections at exit failed")


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
atexit.register(process_exiting)
