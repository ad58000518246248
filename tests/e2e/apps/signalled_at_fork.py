"""clusterapp with a stop signal that reaches a new worker during postfork's first step after
its fork, as a stop under load can: once ``SIGNAL_AT_FORK_MARK`` names a file, the first worker
to start removes it and sends itself SIGTERM while it drops what it inherited, then takes
200 ms more (a busy machine's scheduling), before its warm-up."""

from __future__ import annotations

import os
import signal
import time

from postfork import fork

from .clusterapp import application  # noqa: F401  (the app uWSGI serves)

MARK = os.environ["SIGNAL_AT_FORK_MARK"]


class SignalledWhileDroppingInherited:
    """Fork hooks of a pool-like owner (none): only ``after_fork_in_child`` does anything."""

    owner = None

    def before_fork(self) -> None:
        pass

    def after_fork_in_parent(self) -> None:
        pass

    def at_exit(self, wait: float) -> None:
        pass

    def after_fork_in_child(self) -> None:
        try:
            os.unlink(MARK)
        except FileNotFoundError:
            return
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)


HOOKS = SignalledWhileDroppingInherited()  # held here: fork holds its hooks weakly
fork.register(HOOKS)
