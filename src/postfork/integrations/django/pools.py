"""One postfork pool per Django database alias and process, made from its settings, installed
(warm in every worker before its first request) and released around fork.

``OPTIONS["pool"]`` holds the pool's options (``PoolOptions`` keys: ``min_idle``,
``max_size``, ``checkout_timeout``...); the rest of ``OPTIONS`` goes to the driver as Django's
MySQL backend sends it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from django.core.signals import request_finished, request_started

from ... import after_import, fork
from ...install import DEFAULT_WARMUP_TIMEOUT, install, installation_of
from ...pool import Pool, PoolOptions
from ...response_hooks import after_response
from ...server_warmup import warm_asgi_server
from ...servers import serves_concurrently, serving
from ...threads import start_daemon
from ...url import DatabaseURL
from ...warmup import REPEAT, WARMUP_KEY, asgi_get, checked_repeat, failed, wsgi_get

log = logging.getLogger("postfork.django")

POOL_OPTION = "pool"  # DATABASES[alias]["OPTIONS"]["pool"]: the pool's own options
SESSION_READY = "django.session"  # Slot.info key: Django's session set-up ran on it
WARM_WAIT_UID = "postfork.warm-wait"  # request_started: requests wait for a warm-up running

_lock = threading.Lock()
_pools: dict[str, _AliasPool] = {}  # alias -> its pool for the current settings
_wrappers: weakref.WeakSet[Any] = weakref.WeakSet()  # every DatabaseWrapper on postfork


@dataclasses.dataclass
class _AliasPool:
    key: tuple[Any, ...]  # the settings it was made for
    pool: Pool
    server_facts: dict[str, Any] | None = None  # Django's mysql_server_data, once asked


def pool_for(alias: str, settings: Mapping[str, Any], connect_args: dict[str, Any]) -> Pool:
    """This alias's pool for these settings (a changed NAME, as when Django's test runner
    switches to the test database, gets a new pool; the old one is closed)."""
    key = _settings_key(settings)
    with _lock:
        current = _pools.get(alias)
        if current is not None and current.key == key:
            return current.pool
        pool = _new_pool(settings, connect_args)
        _pools[alias] = _AliasPool(key, pool)
    if current is not None:
        current.pool.close()
    return pool


def server_facts(
    alias: str, settings: Mapping[str, Any], ask: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """``ask()``'s answer, kept with this alias's pool: once per process and server (workers
    inherit a master's), asked again with the pool when the settings change."""
    key = _settings_key(settings)
    current = _pools.get(alias)
    if current is not None and current.key == key and current.server_facts is not None:
        return current.server_facts
    facts = ask()  # connects (through pool_for) if nothing is connected yet
    current = _pools.get(alias)
    if current is not None and current.key == key:
        current.server_facts = facts
    return facts


def _new_pool(settings: Mapping[str, Any], connect_args: dict[str, Any]) -> Pool:
    options = dict(settings.get("OPTIONS", {}).get(POOL_OPTION) or {})
    if "min_idle" not in options and serves_concurrently():
        # an ASGI worker runs several requests at once, each on a thread of its own: warm
        # as many connections as it may use, or the second concurrent request connects
        options["min_idle"] = options.get("max_size", PoolOptions().max_size)
    checked = PoolOptions.from_mapping(options, where="OPTIONS['pool'] key(s)")
    import MySQLdb  # Django's driver; PyMySQL when installed as MySQLdb

    driver = "pymysql" if MySQLdb.__name__ == "pymysql" else "mysqlclient"
    args = {**checked.connect_args, **connect_args}
    kwargs = {name: getattr(checked, name) for name in PoolOptions.names()}
    kwargs["connect_args"] = args
    return Pool(_url_of(settings), driver=driver, **kwargs)


def _url_of(settings: Mapping[str, Any]) -> DatabaseURL:
    """For postfork's messages and its own connects (Django's connect arguments go on top)."""
    host = settings.get("HOST") or "localhost"
    socket = {"unix_socket": host} if host.startswith("/") else {}
    return DatabaseURL(
        host="localhost" if socket else host,
        port=int(settings.get("PORT") or 3306),
        user=settings.get("USER") or "root",
        password=settings.get("PASSWORD") or "",
        database=settings.get("NAME") or None,
        options=socket,
    )


def _settings_key(settings: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(
        repr(settings.get(name)) for name in ("NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")
    )


def register(wrapper: Any) -> None:
    _wrappers.add(wrapper)


# -- start-up, fork, and after each response -------------------------------------------------


class DjangoLifecycle:
    """What postfork does for Django's connections at each moment of a pre-fork server."""

    def __init__(self) -> None:
        self.aliases: tuple[str, ...] = ()
        self.warmed = threading.Event()  # cleared while a warm-up on a thread runs
        self.warmed.set()

    def install(self, aliases: tuple[str, ...]) -> None:
        """From the app's ready(): each alias's pool installed; the main thread's connections
        set up in the master (or now, without one), so no worker's first request does it."""
        from django.db import connections

        self.aliases = aliases
        request_finished.connect(_after_response, weak=False, dispatch_uid="postfork.upkeep")
        fork.add_master_listener(self)
        fork.add_listener(self)
        for alias in aliases:
            pool = connections[alias].postfork_pool()
            if installation_of(pool) is None:
                install(pool, master_setup=functools.partial(self._set_up, alias))
        self.after_fork_warm()

    def _set_up(self, alias: str) -> None:
        """One connect through Django on this thread: its checks and session set-up run, and
        its per-process answers (server version, sql_mode) are kept for the workers."""
        from django.db import connections

        connection = connections[alias]
        with warnings.catch_warnings():  # "database access during app initialization": ours,
            warnings.filterwarnings("ignore", category=RuntimeWarning, module="django.db")
            connection.ensure_connection()  # on purpose, so no request has to do it
        connection.close()
        _load_lazily_loaded(connection)

    def before_workers_fork(self) -> None:
        """In the master: every Django connection of ours goes back to its pool (and the pool,
        in master mode, closes it), so no worker inherits it."""
        for wrapper in list(_wrappers):
            if wrapper.connection is not None and not wrapper.in_atomic_block:
                log.info("closing Django's %r connection in the master before fork", wrapper.alias)
                wrapper.close()

    def after_fork(self) -> None:
        """In a new worker: connections held across fork are the parent's; forget them (their
        fds already point at /dev/null), then set this worker's sessions up."""
        for wrapper in list(_wrappers):
            wrapper.forget_inherited()
        self.after_fork_warm()

    def after_fork_warm(self) -> None:
        """In a process that serves requests (a uWSGI or gunicorn worker, or a worker of an
        ASGI server): each alias's session set up through Django, then the warm-up request.

        In a worker forked from a master that loaded the app, that happens now. Where the app
        loads in the worker itself (spawned ASGI workers, gunicorn without ``preload_app``,
        uWSGI ``lazy-apps``), this runs inside ``django.setup()``, before the apps after this
        one are ready: the warm-up then runs as the module that set Django up (``wsgi.py``,
        ``asgi.py``) returns, before the server goes on to serve. Under uvicorn and hypercorn
        that import runs inside their event loop, where Django refuses database calls: the
        warm-up runs on a thread of its own, waited for. Where no import is under way, the
        warm-up runs on a thread once every app is ready, and a request that arrives before
        it ends waits for it."""
        from django.apps import apps

        if serving() is None:
            return  # a master set up in install(); no server (manage.py): nothing to warm
        asgi = serves_concurrently()
        if apps.ready and not _loop_running():
            self._warm(asgi)
            return
        module = after_import.module_being_imported()
        if module is None or not after_import.when_done(
            module, functools.partial(self._warm_before_serving, asgi)
        ):
            self._warm_on_a_thread(asgi)

    def _warm_before_serving(self, asgi: bool) -> None:
        """As the app's module returns: every app ready, the server not serving yet."""
        if _loop_running():
            self._warm_on_a_thread(asgi)
            self.wait_until_warm()
        else:
            self._warm(asgi)

    def _warm_on_a_thread(self, asgi: bool) -> None:
        self.warmed.clear()
        request_started.connect(_before_request, weak=False, dispatch_uid=WARM_WAIT_UID)
        start_daemon(self._warm_when_ready, "postfork-warm", asgi)

    def _warm_when_ready(self, asgi: bool) -> None:
        from django.apps import apps

        try:
            if apps.ready_event.wait(DEFAULT_WARMUP_TIMEOUT):
                self._warm(asgi)
        finally:
            self.warmed.set()
            request_started.disconnect(dispatch_uid=WARM_WAIT_UID)

    def wait_until_warm(self) -> None:
        """A request arriving while the warm-up runs waits for it (bounded)."""
        if not self.warmed.wait(DEFAULT_WARMUP_TIMEOUT):
            log.warning("Django warm-up still running after %ss: serving", DEFAULT_WARMUP_TIMEOUT)

    def _warm(self, asgi: bool) -> None:
        from django.db import connections

        for alias in self.aliases:
            try:
                self._set_up(alias)
            except Exception as exc:  # the pool already logged why; requests will say 503
                log.debug("Django warm-up of %r failed: %r", alias, exc)
                connections[alias].close()
        _warm_up_request(asgi)
        if asgi:  # the ASGI server's own request handling (a WSGI server's: its post_fork)
            asyncio.run(warm_asgi_server())


lifecycle = DjangoLifecycle()


def _warm_up_request(asgi: bool) -> None:
    """``settings.POSTFORK_WARMUP_PATH``: a GET through Django in this new worker, before
    its first real request, so that one is as fast as any other (what only a request loads or
    touches: the view's code and data, pages copied after fork), through the handler that will
    serve (``asgi``: Django's ASGI handler, else its WSGI one); ``POSTFORK_WARMUP_REPEAT``
    times (3: see ``postfork.warmup.REPEAT``). Never raises."""
    from django.conf import settings

    path = getattr(settings, "POSTFORK_WARMUP_PATH", None)
    if not path:
        return
    try:
        for _ in range(checked_repeat(getattr(settings, "POSTFORK_WARMUP_REPEAT", REPEAT))):
            status = _asgi_get(path) if asgi else _get(path)
            if failed(status):
                break
    except Exception as exc:
        log.warning("Django warm-up request GET %s failed (serving anyway): %r", path, exc)
        return
    level = logging.WARNING if failed(status) else logging.DEBUG
    log.log(level, "Django warm-up request GET %s: %s", path, status or "no answer")


def _host() -> str:
    from django.conf import settings

    hosts = [host.lstrip(".") for host in settings.ALLOWED_HOSTS if host not in ("*", "")]
    return hosts[0] if hosts else "localhost"


def _get(path: str) -> int:
    from django.core.handlers.wsgi import WSGIHandler

    return wsgi_get(WSGIHandler(), path, _host())


def _asgi_get(path: str) -> int:
    """The GET through Django's ASGI handler, in an event loop of its own (this thread has
    none running: see ``after_fork_warm``)."""
    from django.core.handlers.asgi import ASGIHandler

    return asyncio.run(asgi_get(ASGIHandler(), path, _host()))


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _load_lazily_loaded(connection: Any) -> None:
    """What Django loads on its first request, loaded here instead (in the master, workers
    inherit it): the URLconf, its views and the resolver's tables (~3 ms measured), the
    backend's SQL compiler module."""
    from django.urls import get_resolver

    try:
        resolver = get_resolver()
        resolver.url_patterns  # noqa: B018  (imports the URLconf and its views)
        resolver._populate()
        connection.ops.compiler("SQLCompiler")
    except Exception as exc:  # an app without URLs, a URLconf error: its first request says
        log.debug("Django's lazy loading not done ahead: %r", exc)


def _before_request(sender: Any = None, **kwargs: Any) -> None:
    scope_or_environ = kwargs.get("scope") or kwargs.get("environ") or {}
    if not scope_or_environ.get(WARMUP_KEY):  # the warm-up's own request goes on
        lifecycle.wait_until_warm()


def _after_response(sender: Any = None, **kwargs: Any) -> None:
    if _is_asgi_handler(sender):
        give_back_after_asgi_request()
    after_response()


def give_back_after_asgi_request() -> None:
    """At the end of a request served through Django's ASGI handler: this request's
    connections go back to their pools whatever ``CONN_MAX_AGE`` says. The pool keeps the
    server session open (its ``max_lifetime`` does what ``CONN_MAX_AGE`` does), while Django
    keeps connections per request context under ASGI: one kept for "the next request" would
    be kept by nobody (Django ticket #33497), and the pool would run dry. Outside a
    transaction only (an ``atomic()`` block still open is Django's to end)."""
    from django.db import connections

    connection: Any
    for connection in connections.all(initialized_only=True):
        if connection not in _wrappers or connection.connection is None:
            continue  # not on postfork.django, or not connected
        if connection.in_atomic_block:
            continue
        connection.inc_thread_sharing()  # whichever thread ran the request, it is over
        try:
            connection.close()
        finally:
            connection.dec_thread_sharing()


def _is_asgi_handler(sender: Any) -> bool:
    return isinstance(sender, type) and issubclass(sender, _asgi_handler_class())


@functools.cache
def _asgi_handler_class() -> type:
    from django.core.handlers.asgi import (
        ASGIHandler,  # on first use: the backend loads before any handler
    )

    return ASGIHandler  # type: ignore[no-any-return]
