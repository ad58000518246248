"""Which pre-fork server runs this process, and in which role; uWSGI's post-fork hook.

uWSGI forks from C, so Python's at-fork hooks do not run there and its ``post_fork_hook`` is
used; gunicorn and ``multiprocessing`` fork with ``os.fork()``, which ``_fork`` covers with
``os.register_at_fork``.
"""

from __future__ import annotations

import enum
import importlib
import logging
import os
import sys
from collections.abc import Callable
from types import ModuleType

log = logging.getLogger("postfork.server")


class Role(enum.Enum):
    MASTER = "master"  # loads the app, then forks workers: must hold no connection
    WORKER = "worker"  # serves requests: warm before the first one
    STANDALONE = "standalone"  # no pre-fork server: a script, a dev server, a test


def _uwsgi() -> ModuleType | None:
    """The ``uwsgi`` module exists only inside a uWSGI process."""
    try:
        return sys.modules.get("uwsgi") or importlib.import_module("uwsgi")
    except ImportError:
        return None


def detect() -> tuple[str, Role]:
    """(server name, role of this process): "uwsgi", "gunicorn" or "none"."""
    uwsgi = _uwsgi()
    if uwsgi is not None:
        return "uwsgi", Role.WORKER if uwsgi.worker_id() > 0 else Role.MASTER
    gunicorn_role = _gunicorn_role()
    if gunicorn_role is not None:
        return "gunicorn", gunicorn_role
    return "none", Role.STANDALONE


def _gunicorn_role() -> Role | None:
    """gunicorn has no API for this; its code on our stack tells: a worker loading the app
    (no ``preload_app``) runs inside ``gunicorn/workers``, the arbiter (``preload_app``) not."""
    if "gunicorn" not in sys.modules:
        return None
    frame = sys._getframe(1)
    in_arbiter = False
    while frame is not None:
        path = frame.f_code.co_filename.replace(os.sep, "/")
        if "/gunicorn/workers/" in path:
            return Role.WORKER
        in_arbiter = in_arbiter or path.endswith("/gunicorn/arbiter.py")
        frame = frame.f_back  # type: ignore[assignment]
    return Role.MASTER if in_arbiter else None


def hook_uwsgi_post_fork(callback: Callable[[], None]) -> bool:
    """Inside uWSGI, run ``callback`` in each worker right after its C-level fork."""
    uwsgi = _uwsgi()
    if uwsgi is None:
        return False
    _chain_uwsgi_post_fork(uwsgi, callback)
    return True


def _chain_uwsgi_post_fork(uwsgi: ModuleType, callback: Callable[[], None]) -> None:
    """Join uwsgidecorators' post-fork chain (what ``@postfork`` uses) so neither replaces
    the other; without a master that module refuses to load, so chain the hook by hand."""
    try:
        uwsgidecorators = importlib.import_module("uwsgidecorators")
    except Exception as exc:  # it raises a bare Exception when the master is disabled
        log.debug("uwsgidecorators unavailable (%s); chaining uwsgi.post_fork_hook", exc)
        previous = getattr(uwsgi, "post_fork_hook", None)

        def chained() -> None:
            if previous is not None:
                previous()
            callback()

        setattr(uwsgi, "post_fork_hook", chained)  # noqa: B010 (a module attribute uWSGI reads)
        return
    uwsgidecorators.postfork(callback)
