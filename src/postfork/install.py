"""``postfork.install(pool)``: every worker warm before it accepts a request, under any server.

In a master (uWSGI with ``lazy-apps`` off, gunicorn with ``preload_app``) the driver is
initialised and the pool keeps no connection, so workers inherit none; each worker warms right
after its fork. Where the app is loaded inside the worker (``lazy-apps``, no ``preload_app``) or
no server forks at all, the pool warms at install time.

An :class:`~postfork.AsyncPool` warms in its event loop, which exists only once the worker
runs its ASGI lifespan (``postfork.asgi``): ``install()`` does the master's part (the driver
initialised, no connection kept) and :meth:`Installation.warm_async` the worker's. Both warm
through one code path (:meth:`Installation._warm`, a coroutine the thread pool drives to its
end without a loop: nothing in it suspends for a thread pool).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
import os
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from . import after_import, environment, fork, response_hooks
from .coroutines import result, run_to_end
from .errors import ConfigError, Error
from .log_output import announce
from .pool import AsyncPool, Pool
from .pool.core import PoolCore
from .servers import Role, detect
from .servers import uwsgi as uwsgi_server
from .threads import start_daemon
from .topology import Cluster
from .upkeep import upkeep

log = logging.getLogger("postfork.install")

DEFAULT_WARMUP_TIMEOUT = 10.0
F = TypeVar("F", bound=Callable[[], object])
Step = Callable[[], object]  # what install() runs at a moment of a process's life
Installable = Pool | Cluster | AsyncPool  # one pool, one per member of a topology, or asyncio's
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class WarmReport:
    """How one process's warm-up went: the data behind its ``warm in`` log line, for anyone
    who needs it as data (the bench times respawns with it)."""

    pid: int
    server: str
    role: str
    started_at: float  # wall clock (time.time()): in a worker, right after its fork
    connections: int  # opened by this warm-up
    connect_seconds: float
    warmup_seconds: float  # the warm-up callback
    error: str | None = None  # why the pool is not warm (the worker serves 503 meanwhile)
    ready: int | None = None  # connections idle once warm (some may predate the warm-up)

    @property
    def seconds(self) -> float:
        return self.connect_seconds + self.warmup_seconds

    @property
    def ready_at(self) -> float:
        return self.started_at + self.seconds

    def render(self) -> str:
        if self.error is not None:
            return (
                f"pid {self.pid}: pool not warm, serving 503 until the database answers: "
                f"{self.error}"
            )
        already = (self.ready or 0) - self.connections
        connections = (
            f"{self.ready} connection(s) ready ({self.connections} opened now in "
            f"{self.connect_seconds * 1e3:.1f} ms, {already} already open)"
            if already > 0
            else f"{self.connections} connection(s) in {self.connect_seconds * 1e3:.1f} ms"
        )
        return (
            f"pid {self.pid}: warm in {self.seconds * 1e3:.1f} ms: {connections}, "
            f"warm-up {self.warmup_seconds * 1e3:.1f} ms"
        )

    def to_json(self) -> str:
        return json.dumps({"event": "warm", **dataclasses.asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> WarmReport | None:
        """A report written by :meth:`to_json`, or None for any other line."""
        record = json.loads(line)
        if record.pop("event", None) != "warm":
            return None
        return cls(**record)


WarmListener = Callable[[WarmReport], None]


class Installation:
    """What ``install()`` set up for one pool, and how this process's warm-up went.

    ``on_warm`` listeners receive each :class:`WarmReport` of this process and its workers.
    """

    def __init__(
        self,
        pool: Installable,
        *,
        warmup: Callable[[], object] | None,
        warmup_timeout: float,
    ) -> None:
        self.pool = pool
        self.warmup = warmup
        self.warmup_timeout = warmup_timeout
        self.server, self.role = detect()
        self.on_warm: list[WarmListener] = []
        self.last_report: WarmReport | None = None
        self.warm_pid = 0  # the process whose warm-up succeeded
        self.upkeep = True  # maintain() after responses and on a timer in each worker
        self.settings: dict[str, Any] = {}  # install()'s options, to install a recreated pool

    @property
    def asynchronous(self) -> bool:
        """An AsyncPool: it warms in its loop (``warm_async``), not after fork."""
        return isinstance(self.pool, AsyncPool)

    def after_fork(self) -> None:
        self.server, self.role = detect()
        if self.pool.closed or self.asynchronous:
            return  # an AsyncPool warms when the worker's loop runs the app's lifespan
        self.warm_now()
        if self.upkeep:
            upkeep.start_timer()

    def warm_now(self) -> bool:
        """Open the pool's connections and run the warm-up; never raises (a worker that cannot
        reach the database must still start, report not-ready and answer 503)."""
        if self.asynchronous:
            raise TypeError("an AsyncPool warms in its loop: await installation.warm_async()")
        return run_to_end(self._warm())

    async def warm_async(self) -> bool:
        """``warm_now()`` for an AsyncPool, in its loop (the ASGI lifespan's start-up); never
        raises either."""
        return await self._warm()

    async def _warm(self) -> bool:
        started_at, started = time.time(), time.perf_counter()
        try:
            opened = await result(self.pool.warm())
        except Error as exc:
            self._report(started_at, 0, time.perf_counter() - started, 0.0, str(exc))
            return False
        connected = time.perf_counter()
        await self._run_warmup()
        done = time.perf_counter()
        self._report(started_at, opened, connected - started, done - connected, None)
        self.warm_pid = os.getpid()
        return True

    def _report(
        self, started_at: float, opened: int, connect: float, warmup: float, error: str | None
    ) -> None:
        ready = None if error is not None else self.pool.counts()[0]
        report = WarmReport(
            os.getpid(),
            self.server,
            self.role.value,
            started_at,
            opened,
            connect,
            warmup,
            error,
            ready,
        )
        self.last_report = report
        if error is None:
            announce(log, "%s", report.render())  # in the server's log, logging configured or not
        else:
            log.warning("%s", report.render())
        for listener in self.on_warm:
            try:
                listener(report)
            except Exception:
                log.exception("warm-up listener %r failed", listener)

    async def _run_warmup(self) -> None:
        """Run the warm-up callback with a time bound; a failure is logged, never raised. A
        coroutine function is awaited in the pool's loop; anything else runs in a thread."""
        if self.warmup is None:
            return
        if inspect.iscoroutinefunction(self.warmup):
            try:
                async with asyncio.timeout(self.warmup_timeout):
                    await self.warmup()
            except TimeoutError:
                log.warning("warm-up took over %gs: cut off; serving anyway", self.warmup_timeout)
            except Exception as exc:
                log.warning("warm-up failed (the worker serves anyway): %r", exc)
            return
        failure: list[BaseException] = []
        thread = start_daemon(_capture, "postfork-warmup", self.warmup, failure)
        thread.join(self.warmup_timeout)
        if thread.is_alive():
            log.warning("warm-up still running after %gs; serving anyway", self.warmup_timeout)
        elif failure:
            log.warning("warm-up failed (the worker serves anyway): %r", failure[0])

    @property
    def warm(self) -> bool:
        """Whether this process finished its warm-up (False in a master, by design)."""
        return self.warm_pid == os.getpid()

    @property
    def warm_error(self) -> str | None:
        report = self.last_report
        return report.error if report is not None and report.pid == os.getpid() else None

    def ready(self) -> bool:
        """For ``/readyz``: ready now (see ``ready_now()`` of a pool or a cluster), or able to
        warm now."""
        return self.pool.ready_now() or self.warm_now()

    async def ready_async(self) -> bool:
        """``ready()`` for an AsyncPool."""
        return self.pool.ready_now() or await self.warm_async()

    def __repr__(self) -> str:
        return f"<Installation {self.server} {self.role.value} warm={self.warm} pool={self.pool!r}>"


def _capture(func: Callable[[], object], failure: list[BaseException]) -> None:
    try:
        func()
    except BaseException as exc:  # reported by the caller's thread
        failure.append(exc)


# The fork registry holds listeners weakly: each installation lives as long as its pool.
_installations: weakref.WeakKeyDictionary[Installable, Installation] = weakref.WeakKeyDictionary()


def install(
    target: Installable | Any,
    *,
    warmup: Callable[[], object] | None = None,
    warmup_timeout: float = DEFAULT_WARMUP_TIMEOUT,
    preload: bool = True,
    accelerate_respawns: bool | None = None,
    on_warm: WarmListener | None = None,
    upkeep_timer: bool = True,
    master_setup: Callable[[], object] | None = None,
    freeze_gc: bool | None = None,
) -> Installation:
    """Make a pool warm in every worker before its first request, under uWSGI, gunicorn or
    plain ``os.fork()``; outside any server it simply warms now.

    ``target`` is a :class:`Pool`, a :class:`~postfork.Cluster` (every member's pool warms, and
    the members are checked once, before the first request), or what carries one: a SQLAlchemy
    engine on ``postfork.sqlalchemy.PostforkPool`` (its ``pool.postfork_pool``). An
    :class:`~postfork.AsyncPool` (or an async engine on postfork's pool) is installed the same
    way, and warms when its loop runs: ``postfork.asgi`` awaits ``warm_async()`` in the app's
    lifespan (``warmup`` may then be a coroutine function, awaited in that loop).

    ``warmup`` runs after the connections are open (e.g. one synthetic request through the
    app), bounded by ``warmup_timeout``. ``preload`` initialises the driver in this process so
    a fresh worker's first connect costs a connect and nothing else. ``accelerate_respawns``
    (default: ``POSTFORK_ACCELERATE_RESPAWNS``, true) makes a uWSGI master replace a recycled
    worker at once rather than on its next one-second tick. ``on_warm`` receives every
    :class:`WarmReport` (also ``installation.on_warm``).

    The pool's upkeep (``maintain()``: connections replaced before their lifetime ends, refilled
    to ``min_idle``) then runs off the request path by itself: after each response under uWSGI
    (and gunicorn with ``postfork.gunicorn.post_request``), and on a timer thread in each worker
    (``upkeep_timer=False``: none; the responses' hook alone).

    ``freeze_gc`` (default: ``POSTFORK_GC_FREEZE``, false), in a master: each worker calls
    ``gc.freeze()`` right after its fork, so its collections leave what it inherited alone and
    those pages stay shared (benchmarks/worker_memory.py measures what it saves).
    """
    pool, master_setup, prepare = _resolve(target, master_setup)
    installation = Installation(pool, warmup=warmup, warmup_timeout=warmup_timeout)
    installation.upkeep = upkeep_timer
    installation.settings = {
        "warmup": warmup,
        "warmup_timeout": warmup_timeout,
        "preload": preload,
        "accelerate_respawns": accelerate_respawns,
        "upkeep_timer": upkeep_timer,
        "freeze_gc": freeze_gc,
    }
    if on_warm is not None:
        installation.on_warm.append(on_warm)
    if preload:
        pool.preload()
    _installations[pool] = installation
    fork.add_listener(installation)
    if not isinstance(pool, AsyncPool):  # an AsyncPool's upkeep is its own refill task
        upkeep.add(pool)
    response_hooks.hook_server()
    at_app_complete = [] if prepare is None else [prepare]
    if installation.role is Role.MASTER:
        fork.freeze_gc_in_children(freeze_gc if freeze_gc is not None else environment.freeze_gc())
        uwsgi_server.warn_about_recycling_once()
        _set_up_in_master(master_setup)
        fork.before_workers_fork()  # ORMs give back what they hold: closed just below
        _enter_master(installation, accelerate_respawns)
    elif not installation.asynchronous:
        if warmup is None:
            installation.warm_now()
        else:  # a request through the app: once the app is complete
            at_app_complete.append(installation.warm_now)
        if upkeep_timer:
            upkeep.start_timer()
    _when_app_complete(at_app_complete)
    return installation


def _when_app_complete(steps: list[Step]) -> None:
    """Run ``steps`` as the module being imported (the app's) finishes, or now when no module
    is being imported: the app is complete then (its models, routes and middleware defined),
    and the server has not forked or accepted yet."""
    if not steps:
        return
    module = after_import.module_being_imported()
    if module is not None and all(after_import.when_done(module, step) for step in steps):
        return
    for step in steps:
        step()


def installation_of(pool: Installable | PoolCore) -> Installation | None:
    return _installations.get(pool)  # type: ignore[arg-type]  # any pool may be asked


def _resolve(
    target: Any, master_setup: Step | None
) -> tuple[Installable, Step | None, Step | None]:
    """The pool to install, what must run in a master before it keeps no connection, and what
    must run once the app is complete (an ORM's preparation, shared by every worker when done
    in a master)."""
    if isinstance(target, Pool | AsyncPool):
        return target, master_setup, None
    if isinstance(target, Cluster):
        setups = target.run_master_setups if target.master_setups else None
        return target, master_setup or setups, target.prepare
    engine = getattr(target, "sync_engine", target)  # SQLAlchemy's AsyncEngine runs a sync one
    holder = engine if hasattr(engine, "postfork_pool") else getattr(engine, "pool", None)
    pool = getattr(holder, "postfork_pool", None)
    prepare = getattr(holder, "postfork_prepare", None)
    if isinstance(pool, AsyncPool):  # its first connect runs in the worker's loop
        return pool, master_setup, prepare
    if not isinstance(pool, Pool):
        maker, pool_class = (
            ("create_async_engine", "AsyncPostforkPool")
            if engine is not target
            else ("create_engine", "PostforkPool")
        )
        raise ConfigError(
            f"install() takes a postfork.Pool, a postfork.AsyncPool or an engine on postfork's "
            f"pool, not {type(target).__name__}"
            + (
                f" with {type(holder).__name__}: create the engine with "
                f"postfork.sqlalchemy.{maker}() (or poolclass=postfork.sqlalchemy.{pool_class})"
                if holder is not None
                else ""
            )
        )
    return pool, master_setup or getattr(holder, "postfork_master_setup", None), prepare


def _set_up_in_master(master_setup: Callable[[], object] | None) -> None:
    """E.g. SQLAlchemy's first connect (the dialect asks the server's version, sql_mode...)
    once here, so no worker asks again; if the database does not answer, workers will."""
    if master_setup is None:
        return
    try:
        master_setup()
    except Exception as exc:
        log.warning("set-up in the master failed (each worker will do it instead): %s", exc)


def _enter_master(installation: Installation, accelerate: bool | None) -> None:
    if accelerate if accelerate is not None else environment.accelerate_respawns():
        uwsgi_server.accelerate_respawns()
    closed, leased = installation.pool.enter_master_mode()
    log.info(
        "%s master pid %d: driver ready, %s; workers warm after fork",
        installation.server,
        os.getpid(),
        _master_connections(closed, leased),
    )


def _master_connections(closed: int, leased: int) -> str:
    """What the master held when it stopped keeping connections, in words."""
    if not closed and not leased:
        return "no connection kept"
    found = [f"closed {closed} idle connection(s) opened while loading"] if closed else []
    if leased:
        found.append(f"{leased} still leased (closed when returned)")
    return "; ".join(found)


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
    fork.add_listener(listener)
    return func
