"""A stop signal that arrives while a new worker sets itself up is obeyed once it has.

postfork warms a worker right after its fork, before the server has installed the worker's
own signal handlers; a server stopping at that moment (a deploy while workers recycle) sends
its stop signal to a process still running the handlers it inherited. gunicorn's are the
arbiter's, which only queue the signal for an arbiter that is not there; uWSGI's Python
SIGINT handler raised KeyboardInterrupt inside the post-fork hook, which uWSGI logged and
went on. Either way the worker lived on until the server's timeout (gunicorn's
graceful_timeout, uWSGI's mercy) killed it. While the set-up runs, SIGTERM, SIGINT and SIGQUIT
are recorded instead; after it, the handlers are put back and a recorded one ends the worker:
its connections closed cleanly, then the signal's default action, as the sender meant.

A handler installed from C (not from Python: ``signal.getsignal`` says None) cannot be put
back from Python and is left alone.
"""

from __future__ import annotations

import contextlib
import signal
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


class HeldStopSignals:
    """``with HeldStopSignals() as held: set_up()``; then ``held.received``, the first stop
    signal that arrived meanwhile, or None."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> HeldStopSignals:
        for number in STOP_SIGNALS:
            previous = signal.getsignal(number)
            if previous is None:
                continue  # installed from C: could not be restored
            try:
                signal.signal(number, self._record)
            except ValueError:  # not the main thread: signals are not ours to handle here
                break
            self._previous[number] = previous
        return self

    def _record(self, number: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(number)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)


def obey(number: signal.Signals) -> None:
    """End this process with ``number``'s default action (what the sender asked for)."""
    signal.signal(number, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {number})
    signal.raise_signal(number)
    raise SystemExit(128 + number)  # a default action that did not end it (not expected)
