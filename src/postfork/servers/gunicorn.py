"""This process's role in a gunicorn server, learnt from gunicorn's own named hooks.

gunicorn calls the hooks its configuration names: ``pre_fork`` in the arbiter before each
worker's fork, ``post_fork`` in the new worker. The hooks ``postfork.gunicorn`` gives a
configuration report both moments here, so once the arbiter has forked its first worker every
process knows its role from gunicorn itself. Before that (while the arbiter preloads the app),
or under a configuration without those hooks, gunicorn's code on the stack is the fallback.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

log = logging.getLogger("postfork.server")

_arbiter_pid = 0  # set by the pre_fork/post_fork hooks; a worker inherits it (its pid differs)
# The worker object the arbiter is about to fork (from pre_fork): the child inherits it, and
# knows it from inside the fork itself (os.register_at_fork's hooks run before post_fork).
_worker: Any = None


def arbiter_forks(arbiter_pid: int, worker: Any = None) -> None:
    """From the ``pre_fork`` hook, in the arbiter."""
    global _arbiter_pid, _worker
    _arbiter_pid, _worker = arbiter_pid, worker


def worker_started(arbiter_pid: int, worker: Any = None) -> None:
    """From the ``post_fork`` hook, in the new worker."""
    global _arbiter_pid, _worker
    _arbiter_pid, _worker = arbiter_pid, worker


def serving_worker() -> Any:
    """The gunicorn worker object this process is (None in the arbiter, or when no hook of
    ``postfork.gunicorn`` ran): what runs later in the worker needs it (an ASGI worker's request
    handling is warmed in its event loop)."""
    return None if os.getpid() == _arbiter_pid else _worker


def in_arbiter() -> bool | None:
    """True in the arbiter, False in a worker, None outside gunicorn."""
    if _arbiter_pid:
        return os.getpid() == _arbiter_pid
    return _in_arbiter_by_stack()


def _in_arbiter_by_stack() -> bool | None:
    """The fallback: a worker that loads the app (no ``preload_app``) runs inside
    ``gunicorn/workers``; the arbiter preloading it runs inside ``gunicorn/arbiter.py``."""
    if "gunicorn" not in sys.modules:
        return None
    frame = sys._getframe(1)
    arbiter = False
    while frame is not None:
        path = frame.f_code.co_filename.replace(os.sep, "/")
        if "/gunicorn/workers/" in path:
            return False
        arbiter = arbiter or path.endswith("/gunicorn/arbiter.py")
        frame = frame.f_back  # type: ignore[assignment]
    if arbiter:
        log.debug("gunicorn arbiter found on the stack (no pre_fork hook has run yet)")
        return True
    return None


def recycling_warning(max_requests: int, jitter: int, workers: int) -> str | None:
    """Under gunicorn with ``max_requests`` and several workers but no ``max_requests_jitter``:
    workers started together serve about as many requests each, reach the limit together and
    restart together, and the server's capacity drops with them."""
    if max_requests <= 0 or jitter > 0 or workers < 2:
        return None
    suggested = max(1, max_requests // 10)
    return (
        f"max_requests is {max_requests} with max_requests_jitter 0 and {workers} workers: "
        f"workers that start together recycle together; set max_requests_jitter (about "
        f"{suggested}) so that they leave one at a time"
    )


_warned_pid = 0  # the arbiter that said it (once, at its first fork)


def warn_about_recycling_once(cfg: object) -> None:
    """The warning above, once per arbiter, from the settings gunicorn hands its hooks."""
    global _warned_pid
    if _warned_pid == os.getpid():
        return
    _warned_pid = os.getpid()
    numbers = [getattr(cfg, name, 0) for name in ("max_requests", "max_requests_jitter", "workers")]
    if all(isinstance(number, int) for number in numbers):
        warning = recycling_warning(*numbers)
        if warning:
            log.warning("%s", warning)
