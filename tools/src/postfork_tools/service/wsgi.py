"""WSGI entry point: ``postfork_tools.service.wsgi:application``, configured from the environment.

``DATABASE_URL`` and the ``POSTFORK_*`` variables (docs/reference/service.md, ``settings.py``)
choose the database and the connection mode: ``warm`` (postfork.install with a synthetic warm-up
request), ``postfork`` (connect right after fork, nothing else: the known fix) or ``lazy``
(connect on a worker's first request: the problem); ``sqlalchemy`` runs it on
SQLAlchemy's QueuePool with ``pool_pre_ping`` instead, the bench's baseline.

Around the service: the middleware of ``service.observed``.
"""

from __future__ import annotations

from typing import Any

from postfork import environment, wsgi
from postfork.install import install
from postfork.pool import Pool
from postfork.topology import Cluster
from postfork.wsgi import WSGIApp, warmup_request
from postfork_tools.service.app import ReplicaReads, Service
from postfork_tools.service.database import Database
from postfork_tools.service.event_log import EventLog
from postfork_tools.service.observed import configure_logging, observed
from postfork_tools.service.rows import text_datetimes
from postfork_tools.service.settings import (
    WARMUP_PATH,
    ServiceSettings,
    service_settings,
    with_query_timeouts,
)


def build(settings: ServiceSettings) -> WSGIApp:
    """The service's WSGI application, wrapped in the middleware its settings ask for."""
    configure_logging(settings)
    app, pool = _application(settings)
    return observed(app, pool, settings, wsgi)  # type: ignore[no-any-return]


def _application(settings: ServiceSettings) -> tuple[WSGIApp, Pool | Cluster | None]:
    """The app for the connect mode, and the postfork pool metrics watch (the plain service's)."""
    if settings.connect.startswith("orm-sqlalchemy"):
        from postfork_tools.service.orm.sqlalchemy_app import SummaryApp

        orm = SummaryApp(
            settings.database_url,
            on_postfork=settings.connect.endswith("postfork"),
            pool_size=settings.pool_size,
        )
        return orm, None
    if settings.connect.startswith("orm-django"):
        environment.export(
            "DJANGO_SETTINGS_MODULE", "postfork_tools.service.orm.django_project.settings"
        )
        from django.core.wsgi import get_wsgi_application

        return get_wsgi_application(), None
    service = _service(settings)
    reads = service.database.pool
    if isinstance(reads, ReplicaReads):
        return service, reads.cluster
    return service, reads if isinstance(reads, Pool) else None


def _service(settings: ServiceSettings) -> Service:
    if settings.connect == "sqlalchemy":
        from postfork_tools.service.baselines import SQLAlchemyPool

        baseline = SQLAlchemyPool(
            settings.database_url,
            driver=settings.driver,
            connect_args={"conv": text_datetimes(settings.driver)},
            max_size=settings.pool_size,
            checkout_timeout=settings.checkout_timeout,
            connect_timeout=settings.connect_timeout,
        )
        read_timeout = float(baseline.url.options.get("read_timeout", 0) or 0)
        return Service(Database(baseline, read_timeout), None, settings.connect)
    lazy = settings.connect == "lazy"
    options: dict[str, Any] = {
        "driver": settings.driver,
        "min_idle": 0 if lazy else 1,
        "max_size": settings.pool_size,
        "checkout_timeout": settings.checkout_timeout,
        "connect_timeout": settings.connect_timeout,
        "autocommit": True,  # read-only service: no transaction to roll back on return
        "connect_args": {"conv": text_datetimes(settings.driver)},  # see rows.py
    }
    pool: Pool | Cluster
    if settings.replica_urls and not lazy:
        pool = Cluster(
            with_query_timeouts(settings),
            [with_query_timeouts(settings, url) for url in settings.replica_urls],
            max_replica_lag=settings.max_replica_lag,
            **options,
        )
        reads: Pool | ReplicaReads = ReplicaReads(pool)
    else:
        pool = reads = Pool(with_query_timeouts(settings), **options)
    read_timeout = float(reads.url.options.get("read_timeout", 0) or 0)
    service = Service(
        Database(reads, read_timeout),
        None,
        settings.connect,
        request_deadline=settings.request_deadline,
    )
    on_warm = EventLog(settings.event_log) if settings.event_log else None
    if settings.connect == "warm":
        warmup = warmup_request(service, WARMUP_PATH)  # through the whole app, as a request
        service.ready = install(pool, warmup=warmup, on_warm=on_warm).ready
    elif settings.connect == "postfork":
        service.ready = install(pool, preload=False, on_warm=on_warm).ready
    return service


application: Any = build(service_settings())
