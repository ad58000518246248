"""One postfork pool per Django database alias and process, made from its settings, installed
(warm in every worker before its first request) and released around fork.

``OPTIONS["pool"]`` holds the pool's options (``PoolOptions`` keys: ``min_idle``,
``max_size``, ``checkout_timeout``...); the rest of ``OPTIONS`` goes to the driver as Django's
MySQL backend sends it.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
import warnings
import weakref
from collections.abc import Mapping
from typing import Any

from ... import fork
from ...install import install, installation_of
from ...pool import Pool, PoolOptions
from ...upkeep import upkeep
from ...url import DatabaseURL

log = logging.getLogger("postfork.django")

POOL_OPTION = "pool"  # DATABASES[alias]["OPTIONS"]["pool"]: the pool's own options
SESSION_READY = "django.session"  # Slot.info key: Django's session set-up ran on it

_lock = threading.Lock()
_pools: dict[str, tuple[tuple[Any, ...], Pool]] = {}  # alias -> (settings key, pool)
_wrappers: weakref.WeakSet[Any] = weakref.WeakSet()  # every DatabaseWrapper on postfork


def pool_for(alias: str, settings: Mapping[str, Any], connect_args: dict[str, Any]) -> Pool:
    """This alias's pool for these settings (a changed NAME, as when Django's test runner
    switches to the test database, gets a new pool; the old one is closed)."""
    key = _settings_key(settings)
    with _lock:
        current = _pools.get(alias)
        if current is not None and current[0] == key:
            return current[1]
        pool = _new_pool(settings, connect_args)
        _pools[alias] = (key, pool)
    if current is not None:
        current[1].close()
    return pool


def _new_pool(settings: Mapping[str, Any], connect_args: dict[str, Any]) -> Pool:
    options = dict(settings.get("OPTIONS", {}).get(POOL_OPTION) or {})
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

    def install(self, aliases: tuple[str, ...]) -> None:
        """From the app's ready(): each alias's pool installed; the main thread's connections
        set up in the master (or now, without one), so no worker's first request does it."""
        from django.core.signals import request_finished
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
        from django.db import connections

        from ...servers import Role, detect

        if detect()[1] is not Role.WORKER:
            return  # a master set up in install(); no server (manage.py): nothing to warm
        for alias in self.aliases:
            try:
                self._set_up(alias)
            except Exception as exc:  # the pool already logged why; requests will say 503
                log.debug("Django warm-up of %r failed: %r", alias, exc)
                connections[alias].close()
        _warm_up_request()


lifecycle = DjangoLifecycle()


def _warm_up_request() -> None:
    """``settings.POSTFORK_WARMUP_PATH``: one GET through Django in this new worker, before
    its first real request, so that one is as fast as any other (what only a request loads or
    touches: the view's code and data, pages copied after fork). Never raises."""
    from django.conf import settings

    path = getattr(settings, "POSTFORK_WARMUP_PATH", None)
    if not path:
        return
    try:
        status = _get(path)
    except Exception as exc:
        log.warning("Django warm-up request GET %s failed (serving anyway): %r", path, exc)
        return
    log.debug("Django warm-up request GET %s: %s", path, status)


def _get(path: str) -> str:
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    hosts = [host.lstrip(".") for host in settings.ALLOWED_HOSTS if host not in ("*", "")]
    host = hosts[0] if hosts else "localhost"
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": host,
        "SERVER_PORT": "80",
        "HTTP_HOST": host,
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
        "postfork.warmup": True,
    }
    answer: list[str] = []
    body = WSGIHandler()(environ, lambda status, headers, *exc: answer.append(status))
    try:
        b"".join(body)
    finally:
        body.close()
    return answer[0] if answer else "no answer"


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


def _after_response(**kwargs: Any) -> None:
    upkeep.after_response()
