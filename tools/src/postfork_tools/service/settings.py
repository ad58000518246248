"""How the reference service runs, from ``DATABASE_URL`` and ``POSTFORK_*``
(docs/reference/service.md)."""

from __future__ import annotations

import dataclasses

from postfork import environment
from postfork.drivers import ASYNC_DRIVER_NAMES, DRIVER_NAMES
from postfork.errors import ConfigError
from postfork.url import DatabaseURL, parse_url
from postfork.validate import POSITIVE_INTEGER, POSITIVE_SECONDS

# warm: install() with a synthetic warm-up request; postfork: connect after fork only (the
# known fix); lazy: connect on a worker's first request (the problem); sqlalchemy:
# stock SQLAlchemy QueuePool with pool_pre_ping instead of postfork (the bench's baseline).
# orm-*: the summary endpoint through an ORM (the bench's ORM scenarios): SQLAlchemy stock or
# on postfork; Django stock (a connection per request), persistent (CONN_MAX_AGE 60) with health
# checks, or on postfork. Under an ASGI server, the Django ones (through Django's ASGI handler).
ORM_MODES = (
    "orm-sqlalchemy",
    "orm-sqlalchemy-postfork",
    "orm-django",
    "orm-django-persistent",
    "orm-django-postfork",
)
WARMUP_PATH = "/v1/accounts/1/summary"  # the warm-up request every warm mode sends
CONNECT_MODES = ("warm", "postfork", "lazy", "sqlalchemy", *ORM_MODES)
# the ASGI twin (postfork_tools.service.asgi): warm (the lifespan's warm-up request too), postfork
# (the pool warm in the lifespan), lazy; and the bench's asyncio baselines (service/baselines)
ASYNC_BASELINES = ("sqlalchemy-async", "sqlalchemy-async-preping", "driver-pool")
ASGI_ORM_MODES = tuple(mode for mode in ORM_MODES if mode.startswith("orm-django"))
ASGI_CONNECT_MODES = ("warm", "postfork", "lazy", *ASYNC_BASELINES, *ASGI_ORM_MODES)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ACCESS_LOG_FORMATS = ("logfmt", "json", "off")
EVENT_LOG_VAR = "POSTFORK_EVENT_LOG"


@dataclasses.dataclass(frozen=True)
class ServiceSettings:
    database_url: str
    connect: str = "warm"
    driver: str = "mysqlclient"
    pool_size: int = 2
    checkout_timeout: float = 2.0
    connect_timeout: float = 2.0
    # Every wait is bounded (docs/reliability.md): a query's reads and writes (the URL's
    # read_timeout / write_timeout win), and the request as a whole: past the deadline it is
    # answered with a 503 whatever the database does. The servers' own last resorts (uWSGI's
    # harakiri, gunicorn's timeout) sit above it in the shipped configurations.
    read_timeout: float = 2.0
    write_timeout: float = 2.0
    request_deadline: float = 2.5
    log_level: str = "INFO"
    access_log: str = "logfmt"  # logfmt, json or off: one line per request (postfork.access)
    profile: str = ""  # ProfileSettings text, e.g. "every=100,first=1"; empty: no profiling
    metrics: bool = True  # /metrics, aggregated over the server's workers
    event_log: str = ""  # a file: each worker's WarmReport as a JSON line (the bench reads it)
    # POSTFORK_REPLICA_URLS: the queries (all reads) go to these replicas through a Cluster,
    # the primary (DATABASE_URL) when none is fresh (warm and postfork modes)
    replica_urls: tuple[str, ...] = ()
    max_replica_lag: float = 5.0


def service_settings(*, asgi: bool = False) -> ServiceSettings:
    """The settings from the environment; ``asgi``: for the ASGI twin (asyncio drivers)."""
    url = environment.database_url()
    if not url:
        raise ConfigError(
            f"{environment.DATABASE_URL_VAR} is not set: the service needs "
            "mysql://user:password@host:port/db (postfork serve sets it for you)"
        )
    return ServiceSettings(
        database_url=url,
        connect=environment.choice(
            "POSTFORK_CONNECT", "warm", ASGI_CONNECT_MODES if asgi else CONNECT_MODES
        ),
        driver=environment.choice(
            "POSTFORK_DRIVER",
            *(("asyncmy", ASYNC_DRIVER_NAMES) if asgi else ("mysqlclient", DRIVER_NAMES)),
        ),
        pool_size=int(environment.number("POSTFORK_POOL_SIZE", 2, POSITIVE_INTEGER)),
        checkout_timeout=environment.number("POSTFORK_CHECKOUT_TIMEOUT", 2.0, POSITIVE_SECONDS),
        connect_timeout=environment.number("POSTFORK_CONNECT_TIMEOUT", 2.0, POSITIVE_SECONDS),
        read_timeout=environment.number("POSTFORK_READ_TIMEOUT", 2.0, POSITIVE_SECONDS),
        write_timeout=environment.number("POSTFORK_WRITE_TIMEOUT", 2.0, POSITIVE_SECONDS),
        request_deadline=environment.number("POSTFORK_REQUEST_DEADLINE", 2.5, POSITIVE_SECONDS),
        log_level=environment.choice("POSTFORK_LOG_LEVEL", "INFO", LOG_LEVELS),
        access_log=environment.choice("POSTFORK_ACCESS_LOG", "logfmt", ACCESS_LOG_FORMATS),
        profile=environment.text("POSTFORK_PROFILE"),
        metrics=environment.switch("POSTFORK_METRICS", True, on="on", off="off"),
        event_log=environment.text(EVENT_LOG_VAR),
        replica_urls=tuple(environment.replica_urls()),
        max_replica_lag=environment.number("POSTFORK_MAX_REPLICA_LAG", 5.0, POSITIVE_SECONDS),
    )


def with_query_timeouts(settings: ServiceSettings, server: str | None = None) -> DatabaseURL:
    """The database URL (or ``server``'s) with the service's read and write timeouts where it
    sets none: without one, mysqlclient waits for a silent server for ever (PyMySQL too)."""
    url = parse_url(server or settings.database_url)
    defaults = {"read_timeout": settings.read_timeout, "write_timeout": settings.write_timeout}
    return dataclasses.replace(url, options={**defaults, **url.options})
