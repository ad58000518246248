"""clusterapp with a stop signal that reaches a new worker before uWSGI has installed the
worker's own handlers, as a stop under load can: once ``SIGNAL_AT_FORK_MARK`` names a file, the
first worker to start removes it and sends itself SIGTERM, then takes 200 ms more (a busy
machine's scheduling). ``SIGNAL_AT_FORK_WHEN``: ``set-up`` (default), while postfork drops what
the worker inherited, its first step; ``after``, in a post-fork hook of uWSGI's that runs after
postfork's, once its set-up is done."""

from __future__ import annotations

import os
import signal
import time

import uwsgi

from postfork import fork

from .clusterapp import application  # noqa: F401  (the app uWSGI serves; installs postfork)

MARK = os.environ["SIGNAL_AT_FORK_MARK"]
WHEN = os.environ.get("SIGNAL_AT_FORK_WHEN", "set-up")


def signal_myself_once() -> None:
    try:
        os.unlink(MARK)
    except FileNotFoundError:
        return
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)


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
        signal_myself_once()


if WHEN == "set-up":
    HOOKS = SignalledWhileDroppingInherited()  # held here: fork holds its hooks weakly
    fork.register(HOOKS)
else:
    postfork_hook = uwsgi.post_fork_hook  # clusterapp's install() chained postfork's

    def after_postfork() -> None:
        postfork_hook()
        signal_myself_once()

    uwsgi.post_fork_hook = after_postfork
