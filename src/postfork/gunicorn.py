"""gunicorn's named server hooks for postfork, to use in a gunicorn configuration file::

    # gunicorn.conf.py
    from postfork.gunicorn import post_fork, post_request, pre_fork, worker_exit  # noqa: F401

- ``pre_fork(server, worker)``, in the arbiter before each fork: the arbiter is known to be the
  arbiter (at the first fork it warns when ``max_requests`` without ``max_requests_jitter``
  will recycle every worker at once), and every pool in it keeps no connection (whatever the
  app opened while loading is closed cleanly here, and the log says so), so no worker
  inherits a session.
- ``post_fork(server, worker)``, in the new worker: inherited connections are abandoned without
  a byte sent and the pools warm, before the worker loads the app or accepts a request; and
  gunicorn's own request handling runs on requests of its own, so the worker's first real
  request does not run that code for the first time.
- ``post_request(worker, req, environ, resp)``, after each response is sent: the request's
  read-your-writes windows close (a thread's next request is another client's), and the pools'
  upkeep runs (connections near the end of their life replaced, off the request path).
- ``worker_exit(server, worker)``, in a worker on its way out: its exit line is logged and its
  connections close cleanly; a worker recycled by ``max_requests`` then exits without the
  interpreter's teardown (``POSTFORK_FAST_WORKER_EXIT=false`` turns that off).

Without them postfork still works under gunicorn (it forks with ``os.fork()``, which
``os.register_at_fork`` covers), but the arbiter's role is then guessed from gunicorn's code on
the stack. If your configuration has its own hook of the same name, call ours from it.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import Any

from . import environment, fork, server_warmup
from .install import installation_of
from .pool.core import PoolCore
from .response_hooks import after_response
from .servers import gunicorn as gunicorn_server

log = logging.getLogger("postfork.server")

__all__ = ["post_fork", "post_request", "pre_fork", "worker_exit"]


def pre_fork(server: Any, worker: Any) -> None:
    gunicorn_server.arbiter_forks(os.getpid(), worker)
    gunicorn_server.warn_about_recycling_once(getattr(server, "cfg", None))
    fork.before_workers_fork()  # ORMs give back the connections they hold
    for pool in fork.live_pools():
        if isinstance(pool, PoolCore):  # a thread pool or an asyncio one
            _hold_nothing(pool)


def _hold_nothing(pool: PoolCore) -> None:
    installed = installation_of(pool) is not None
    closed, leased = pool.enter_master_mode()
    if closed or leased:
        log.warning(
            "gunicorn arbiter pid %d: %s held %d idle and %d leased connection(s) before "
            "forking a worker; closed the idle ones%s",
            os.getpid(),
            repr(pool),
            closed,
            leased,
            "" if installed else " (call postfork.install(pool) to keep none from the start)",
        )


def post_fork(server: Any, worker: Any) -> None:
    gunicorn_server.worker_started(int(getattr(server, "pid", 0) or os.getppid()), worker)
    fork.child_started()
    server_warmup.warm_wsgi_worker(worker)


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    """After each response is sent: the request's read-your-writes windows close, and the
    installed pools' upkeep runs, off the request path."""
    after_response()


def worker_exit(server: Any, worker: Any) -> None:
    """Exit listeners first (the exit line, connections closed cleanly). Then a worker that
    leaves because it reached ``max_requests`` skips the interpreter's teardown, as uWSGI's
    ``skip-atexit-teardown`` does: atexit hooks run and the logs are flushed, then
    ``os._exit(0)``; the arbiter replaces it sooner. Every other exit (a boot error, a signal,
    a crash) is left to gunicorn, with its exit codes. The hook runs in the worker's main
    thread once its loop has ended (a stop signal's exception has unwound by then), so
    closing the pools may wait for another thread's moment under their lock."""
    fork.process_exiting(orderly=True)
    if environment.fast_worker_exit() and _recycled(worker):
        _exit_without_teardown()


def _recycled(worker: Any) -> bool:
    served, limit = getattr(worker, "nr", 0), getattr(worker, "max_requests", 0)
    if isinstance(served, int) and isinstance(limit, int) and 0 < limit <= served:
        return True
    return _uvicorn_worker_recycled(worker)


def _uvicorn_worker_recycled(worker: Any) -> bool:
    """uvicorn's worker counts its requests itself (gunicorn's ``nr`` stays 0): its server ends
    on its own only at its request limit. A stop signal ends it otherwise: SIGTERM and SIGINT
    kill it after its shutdown (uvicorn raises them again with gunicorn's handlers reset, so
    this hook never runs), SIGQUIT clears ``alive``; a start-up failure exits with gunicorn's
    boot-error code. So: a request limit set, still alive, and a clean exit in progress."""
    limit = getattr(getattr(worker, "config", None), "limit_max_requests", None)
    if not isinstance(limit, int) or limit <= 0 or getattr(worker, "alive", False) is not True:
        return False
    leaving = sys.exc_info()[1]  # this hook runs in gunicorn's ``finally`` around the worker
    return isinstance(leaving, SystemExit) and leaving.code in (0, None)


def _exit_without_teardown() -> None:
    log.info("pid %d: recycled: exiting without teardown", os.getpid())
    try:
        atexit._run_exitfuncs()
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(0)
