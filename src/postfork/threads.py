"""postfork's helper threads (upkeep timer, deadline watchdog, warm-ups), started with every
asynchronous signal blocked, so that the process's signals always reach its main thread.

A server stops or reloads a worker with a signal to the process, which the kernel may deliver
to any thread that does not block it. uWSGI's handler then exits from whichever thread got it;
from a helper thread, the interpreter's shutdown waits for the main thread, which sits in
uWSGI's accept loop: the worker hung until the master's mercy ran out or a second signal came.
Python runs its own handlers in the main thread anyway, so blocking them here takes nothing
from the app. The mask is set in the creating thread around ``start()``, so the new thread
never runs a moment without it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

# delivered to the thread that caused them, never chosen among threads: left alone
_SYNCHRONOUS = {
    signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT,
    signal.SIGTRAP, signal.SIGSYS, signal.SIGKILL, signal.SIGSTOP,
}  # fmt: skip
ASYNCHRONOUS = frozenset(signal.valid_signals() - _SYNCHRONOUS)


def start_daemon(target: Callable[..., object], name: str, *args: Any) -> threading.Thread:
    """``threading.Thread(target=target, args=args, name=name, daemon=True)``, started with
    the asynchronous signals blocked in it."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, ASYNCHRONOUS)
    try:
        thread.start()  # the new thread inherits the mask in force here
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return thread
