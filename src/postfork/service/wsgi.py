"""WSGI entry point: ``postfork.service.wsgi:application``, configured from the environment.

``DATABASE_URL`` and the ``POSTFORK_*`` variables (see the README) choose the database and the
connection mode: ``warm`` (postfork.install with a synthetic warm-up request), ``postfork``
(connect right after fork, nothing else: the story's fix) or ``lazy`` (connect on a worker's
first request: the story's "before"); ``sqlalchemy`` runs it on SQLAlchemy's QueuePool with
``pool_pre_ping`` instead, the bench's baseline.

Around the service, from the inside out: sampled profiling (``POSTFORK_PROFILE``, not wrapped
at all when unset), ``/metrics``, and timing (``Server-Timing``, ``X-Worker``, the access log,
and the metrics' observer: it sees every request, as the server counts them).
"""

from __future__ import annotations

import logging
from typing import Any

from .. import _config
from .._install import install
from .._pool import Pool
from ..middleware import ProfileSettings, ProfilingMiddleware, TimingMiddleware, WSGIApp
from .app import Service


def build(settings: _config.ServiceSettings) -> WSGIApp:
    """The service's WSGI application, wrapped in the middleware its settings ask for."""
    if not logging.getLogger().handlers:  # the server did not configure logging: do it here
        logging.basicConfig(
            level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    profile = ProfileSettings.parse(settings.profile)  # a typo fails the load, not a request
    service = _service(settings)
    app: WSGIApp = service
    if profile.enabled:
        app = ProfilingMiddleware(app, profile)
    metrics = None
    if settings.metrics and isinstance(service.pool, Pool):
        from ..metrics import MetricsEndpoint, ServiceMetrics

        metrics = ServiceMetrics(service.pool)
        app = MetricsEndpoint(app, metrics)
    timing = TimingMiddleware(app, access_log_format=settings.access_log)
    if metrics is not None:  # every request is counted, /metrics too (as the server counts it)
        timing.observers.append(metrics.observe)
    return timing


def _service(settings: _config.ServiceSettings) -> Service:
    if settings.connect == "sqlalchemy":
        from ..bench.sqlalchemy_pool import SQLAlchemyPool

        baseline = SQLAlchemyPool(
            settings.database_url,
            driver=settings.driver,
            max_size=settings.pool_size,
            checkout_timeout=settings.checkout_timeout,
            connect_timeout=settings.connect_timeout,
        )
        return Service(baseline, None, settings.connect)
    lazy = settings.connect == "lazy"
    pool = Pool(
        settings.database_url,
        driver=settings.driver,
        min_idle=0 if lazy else 1,
        max_size=settings.pool_size,
        checkout_timeout=settings.checkout_timeout,
        connect_timeout=settings.connect_timeout,
        autocommit=True,  # read-only service: no transaction to roll back on return
    )
    service = Service(pool, None, settings.connect)
    if settings.connect == "warm":
        service.installation = install(pool, warmup=service.warmup_request)
    elif settings.connect == "postfork":
        service.installation = install(pool, preload=False)
    return service


application: Any = build(_config.service_settings())
