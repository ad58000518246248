"""ASGI entry point: ``postfork_tools.service.asgi:app``, the reference service's ASGI twin on
the asyncio pool, configured from the environment as the WSGI one is.

Same endpoints, validation, errors and middleware as ``postfork_tools.service.wsgi`` (one
``Service`` serves both): ``POSTFORK_CONNECT`` ``warm`` (the pool warm in each worker's
lifespan, then one warm-up request through the app), ``postfork`` (the pool warm, nothing
else) or ``lazy`` (a worker connects on its first request); ``sqlalchemy-async``,
``sqlalchemy-async-preping`` and ``driver-pool`` run it on the asyncio baselines instead
(``service.baselines``). The driver is
``POSTFORK_DRIVER``, asyncmy (default) or aiomysql.

Around the service: the middleware of ``service.observed``, and the lifespan (outermost: its
warm-up request goes through all of it, counted by none of it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from postfork import asgi, environment
from postfork.asgi import LifespanMiddleware
from postfork.pool import AsyncPool
from postfork.url import DatabaseURL
from postfork_tools.service.app import Service
from postfork_tools.service.database import Database
from postfork_tools.service.event_log import EventLog
from postfork_tools.service.observed import configure_logging, observed
from postfork_tools.service.rows import text_datetimes
from postfork_tools.service.settings import (
    ASGI_ORM_MODES,
    ASYNC_BASELINES,
    WARMUP_PATH,
    ServiceSettings,
    service_settings,
    with_query_timeouts,
)


def build(settings: ServiceSettings) -> Any:
    """The service's ASGI application, wrapped in the middleware its settings ask for."""
    configure_logging(settings)
    if settings.connect in ASGI_ORM_MODES:  # Django's ASGI handler: no lifespan, its app warms
        environment.export(
            "DJANGO_SETTINGS_MODULE", "postfork_tools.service.orm.django_project.settings"
        )
        from django.core.asgi import get_asgi_application

        return observed(get_asgi_application(), None, settings, asgi)
    service, pool = _service(settings)
    timing = observed(service.asgi, pool, settings, asgi)
    baseline = getattr(service.database.pool, "open", None)
    if pool is None and baseline is not None:
        return BaselineLifespan(timing, service.database.pool)
    if pool is None or settings.connect == "lazy":
        return timing  # no warm-up: a worker connects on its first request
    warmup = WARMUP_PATH if settings.connect == "warm" else None
    on_warm = EventLog(settings.event_log) if settings.event_log else None
    lifespan = LifespanMiddleware(timing, pool, warmup_path=warmup, on_warm=on_warm)
    service.ready = lifespan.postfork.ready
    return lifespan


def _service(settings: ServiceSettings) -> tuple[Service, AsyncPool | None]:
    if settings.connect in ASYNC_BASELINES:
        from postfork_tools.service.baselines import async_baseline

        baseline = async_baseline(settings)
        read_timeout = float(baseline.url.options.get("read_timeout", 0) or 0)
        return Service(Database(baseline, read_timeout), None, settings.connect), None
    url = async_query_timeouts(settings)
    pool = AsyncPool(
        url,
        driver=settings.driver,
        # an asyncio worker serves requests at once (after a respawn, the backlog arrives
        # together): warm as many connections as it serves at once, not one
        min_idle=0 if settings.connect == "lazy" else settings.pool_size,
        max_size=settings.pool_size,
        checkout_timeout=settings.checkout_timeout,
        connect_timeout=settings.connect_timeout,
        autocommit=True,  # read-only service: no transaction to roll back on return
        connect_args={"conv": text_datetimes(settings.driver)},  # see rows.py
    )
    read_timeout = float(url.options.get("read_timeout", 0) or 0)
    service = Service(
        Database(pool, read_timeout),
        None,
        settings.connect,
        request_deadline=settings.request_deadline,
    )
    return service, pool


class BaselineLifespan:
    """A baseline's pool opened at start-up and closed at shutdown (the driver's pool makes
    its connections there; SQLAlchemy's makes none until a request asks)."""

    def __init__(self, app: Any, pool: Any) -> None:
        self.app, self.pool = app, pool

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await receive()
        await self.pool.open()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await self.pool.close()
        await send({"type": "lifespan.shutdown.complete"})


def async_query_timeouts(settings: ServiceSettings) -> DatabaseURL:
    """The URL with the read timeout an asyncio driver takes: asyncmy a read_timeout (none
    for writes: asyncio buffers them), aiomysql neither; the request's deadline bounds all."""
    url = with_query_timeouts(settings)
    keep = ("read_timeout",) if settings.driver == "asyncmy" else ()
    dropped = {"read_timeout", "write_timeout"} - set(keep)
    options = {key: value for key, value in url.options.items() if key not in dropped}
    return dataclasses.replace(url, options=options)


app: Any = build(service_settings(asgi=True))
