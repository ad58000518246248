"""A stop signal that arrives while a new worker sets itself up is obeyed once it has.

postfork warms a worker right after its fork, before the server has installed the worker's
own signal handlers; a server stopping at that moment (a deploy while workers recycle) sends
its stop signal to a process still running the handlers it inherited, which are its master's:
gunicorn's arbiter's only queue the signal for an arbiter that is not there, uWSGI's master's
(installed from C, invisible to Python's ``signal.getsignal``) run the master's shutdown in
the worker, which signals its siblings and swallows the signal meant for itself. Either way a
worker lived on until the server's timeout (gunicorn's graceful_timeout, uWSGI's mercy) killed
it. So SIGTERM, SIGINT and SIGQUIT are blocked while the set-up runs, the handlers in place left
untouched; after it, a stop signal that arrived meanwhile ends the worker: its connections
closed cleanly, then the signal's default action, as the sender meant. None arrived: they are
unblocked. In a uWSGI worker SIGINT and SIGTERM first get their default action, which ends
the worker as its own handlers (installed by uWSGI after the post-fork hooks) will: the
master's must never run in it. What arrives between the fork and postfork's first step is
uWSGI's own race.
"""

from __future__ import annotations

import contextlib
import signal
from types import TracebackType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


class HeldStopSignals:
    """``with HeldStopSignals() as held: set_up()``; then, still inside, ``held.received()``:
    a stop signal that arrived meanwhile, or None."""

    def __enter__(self) -> HeldStopSignals:
        self._previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        return self

    def received(self) -> signal.Signals | None:
        pending = signal.sigpending()
        return next((number for number in STOP_SIGNALS if number in pending), None)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, self._previous_mask)


def leave_to_default(numbers: tuple[signal.Signals, ...]) -> None:
    """Give ``numbers`` their default action (from the main thread; elsewhere a no-op)."""
    for number in numbers:
        with contextlib.suppress(ValueError):
            signal.signal(number, signal.SIG_DFL)


def obey(number: signal.Signals) -> None:
    """End this process with ``number``'s default action (what the sender asked for)."""
    signal.signal(number, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {number})
    signal.raise_signal(number)
    raise SystemExit(128 + number)  # a default action that did not end it (not expected)
