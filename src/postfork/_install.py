"""``postfork.install(pool)``: every worker warm before it accepts a request, under any server.

In a master (uWSGI with ``lazy-apps`` off, gunicorn with ``preload_app``) the driver is
initialised and the pool keeps no connection, so workers inherit none; each worker warms right
after its fork. Where the app is loaded inside the worker (``lazy-apps``, no ``preload_app``) or
no server forks at all, the pool warms at install time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from . import _fork, _servers
from ._config import accelerate_respawns as accelerate_from_env
from .errors import Error

if TYPE_CHECKING:
    from ._pool import Pool

log = logging.getLogger("postfork.install")

DEFAULT_WARMUP_TIMEOUT = 10.0
F = TypeVar("F", bound=Callable[[], object])


class Installation:
    """What ``install()`` set up for one pool, and how this process's warm-up went."""

    def __init__(
        self,
        pool: Pool,
        *,
        warmup: Callable[[], object] | None,
        warmup_timeout: float,
    ) -> None:
        self.pool = pool
        self.warmup = warmup
        self.warmup_timeout = warmup_timeout
        self.server, self.role = _servers.detect()
        self.warm_pid = 0  # the process whose warm-up succeeded
        self.warm_error: str | None = None
        self.warm_seconds = 0.0
        self.connections_opened = 0

    def after_fork(self) -> None:
        if not self.pool.closed:
            self.warm_now()

    def warm_now(self) -> bool:
        """Open the pool's connections and run the warm-up; never raises (a worker that cannot
        reach the database must still start, report not-ready and answer 503)."""
        started = time.perf_counter()
        try:
            self.connections_opened = self.pool.warm()
        except Error as exc:
            self.warm_error = str(exc)
            log.warning(
                "pid %d: pool not warm, serving 503 until the database answers: %s",
                os.getpid(),
                exc,
            )
            return False
        connected = time.perf_counter()
        self._run_warmup()
        self.warm_seconds = time.perf_counter() - started
        self.warm_pid, self.warm_error = os.getpid(), None
        log.info(
            "pid %d: warm in %.1f ms: %d connection(s) in %.1f ms, warm-up %.1f ms",
            self.warm_pid,
            self.warm_seconds * 1e3,
            self.connections_opened,
            (connected - started) * 1e3,
            (self.warm_seconds - (connected - started)) * 1e3,
        )
        return True

    def _run_warmup(self) -> None:
        """Run the warm-up callback with a time bound; a failure is logged, never raised."""
        if self.warmup is None:
            return
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=_capture, args=(self.warmup, failure), name="postfork-warmup", daemon=True
        )
        thread.start()
        thread.join(self.warmup_timeout)
        if thread.is_alive():
            log.warning("warm-up still running after %gs; serving anyway", self.warmup_timeout)
        elif failure:
            log.warning("warm-up failed (the worker serves anyway): %r", failure[0])

    @property
    def warm(self) -> bool:
        """Whether this process finished its warm-up (False in a master, by design)."""
        return self.warm_pid == os.getpid()

    def ready(self) -> bool:
        """For ``/readyz``: the pool holds its connections, or can open them now."""
        stats = self.pool.stats()
        if stats["idle"] + stats["in_use"] >= max(self.pool.min_idle, 1):
            return True
        return self.warm_now()

    def __repr__(self) -> str:
        return f"<Installation {self.server} {self.role.value} warm={self.warm} pool={self.pool!r}>"


def _capture(func: Callable[[], object], failure: list[BaseException]) -> None:
    try:
        func()
    except BaseException as exc:  # reported by the caller's thread
        failure.append(exc)


def install(
    pool: Pool,
    *,
    warmup: Callable[[], object] | None = None,
    warmup_timeout: float = DEFAULT_WARMUP_TIMEOUT,
    preload: bool = True,
    accelerate_respawns: bool | None = None,
) -> Installation:
    """Make ``pool`` warm in every worker before its first request, under uWSGI, gunicorn or
    plain ``os.fork()``; outside any server it simply warms now.

    ``warmup`` runs after the connections are open (e.g. one synthetic request through the
    app), bounded by ``warmup_timeout``. ``preload`` initialises the driver in this process so
    a fresh worker's first connect costs a connect and nothing else. ``accelerate_respawns``
    (default: ``POSTFORK_ACCELERATE_RESPAWNS``, true) makes a uWSGI master replace a recycled
    worker at once rather than on its next one-second tick.
    """
    installation = Installation(pool, warmup=warmup, warmup_timeout=warmup_timeout)
    if preload:
        pool._driver.preload()
    pool._installation = installation  # the pool keeps it alive; the fork registry is weak
    _fork.add_listener(installation)
    if installation.role is _servers.Role.MASTER:
        if accelerate_respawns if accelerate_respawns is not None else accelerate_from_env():
            _servers.accelerate_uwsgi_respawns()
        pool._enter_master_mode()
        log.info(
            "%s master pid %d: driver ready, no connection kept; workers warm after fork",
            installation.server,
            os.getpid(),
        )
    else:
        installation.warm_now()
    return installation


class _FunctionListener:
    def __init__(self, func: Callable[[], object]) -> None:
        self.func = func

    def after_fork(self) -> None:
        self.func()


_function_listeners: list[_FunctionListener] = []  # decorated functions live as long as modules


def after_fork(func: F) -> F:
    """Decorator: call ``func`` in every worker right after fork, whatever server forked it
    (uWSGI, gunicorn, ``os.fork()``). A portable ``@uwsgidecorators.postfork``."""
    listener = _FunctionListener(func)
    _function_listeners.append(listener)
    _fork.add_listener(listener)
    return func
