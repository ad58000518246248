"""What ``postfork bench`` runs: the recycling scenarios and the recycling-storm variants; under
an ASGI server, the service's ASGI twin with the asyncio scenarios.

Every scenario is the same reference service on the same data behind the same delay proxy;
only the connection strategy (``POSTFORK_CONNECT``) and the recycling options differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scenario:
    name: str
    connect: str  # POSTFORK_CONNECT: warm, postfork, lazy, sqlalchemy
    recycle: bool  # False: max-requests off
    summary: str
    env: dict[str, str] = field(default_factory=dict)
    extras: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # server options, by server

    def extra(self, server: str) -> tuple[str, ...]:
        return self.extras.get(server, ())


# Recycling exactly: every worker after exactly max-requests requests (no
# per-worker spread), so exactly 1 request in max-requests is a new worker's first. uvicorn
# has no spread to turn off.
_NO_JITTER = ("--max-requests-jitter", "0")
_EXACT = {
    "uwsgi": ("--max-requests-delta", "0"),
    "gunicorn": _NO_JITTER,
    "gunicorn-uvicorn": _NO_JITTER,
    "gunicorn-asgi": _NO_JITTER,
    "hypercorn": _NO_JITTER,
}


def _recycling(name: str, connect: str, summary: str, recycle: bool = True) -> Scenario:
    return Scenario(name, connect, recycle, summary, extras=_EXACT)


RECYCLING = (
    _recycling("no-recycle", "warm", "warm, max-requests off: the ideal", recycle=False),
    _recycling("lazy", "lazy", "connect on a worker's first request: the problem"),
    _recycling("postfork", "postfork", "connect right after fork, nothing else: the known fix"),
    _recycling("warm", "warm", "postfork.install: driver set up in the master, connect + warm-up"),
    _recycling("sqlalchemy", "sqlalchemy", "SQLAlchemy QueuePool + pool_pre_ping, lazy connect"),
)

# uWSGI's own recycling defaults: workers younger than 10 s are never recycled (so workers that
# started together recycle together), no per-worker delta, the 2 s fork-bomb sleep, and the
# master reaping only on its 1 s tick (no accelerator). gunicorn's default is no jitter. All
# three run the same closed loop for the same time.
STORMS = (
    Scenario(
        "storm: no recycling",
        "warm",
        False,
        "the anchor: the same closed loop without recycling",
    ),
    Scenario(
        "storm: server defaults",
        "warm",
        True,
        "the server's own recycling defaults",
        env={"POSTFORK_ACCELERATE_RESPAWNS": "false"},
        extras={
            "uwsgi": (
                "--min-worker-lifetime",
                "10",
                "--max-requests-delta",
                "0",
                "--forkbomb-delay",
                "2",
            ),
            "gunicorn": _NO_JITTER,
        },
    ),
    Scenario(
        "storm: shipped",
        "warm",
        True,
        "the shipped deploy/ configuration (staggered, accelerated)",
    ),
)

RECYCLING_NAMES = tuple(scenario.name for scenario in RECYCLING)


def _orm(name: str, connect: str, summary: str) -> Scenario:
    """The summary endpoint through an ORM; metrics off in all five (stock ORMs have none)."""
    return Scenario(
        name,
        connect,
        True,
        summary,
        env={"POSTFORK_METRICS": "off"},
        extras=_EXACT,
    )


# ``postfork bench --orm``: the same endpoint, data, proxy and recycling, through an ORM.
ORM = (
    _orm("sqlalchemy", "orm-sqlalchemy", "SQLAlchemy ORM, QueuePool + pool_pre_ping"),
    _orm("sqlalchemy on postfork", "orm-sqlalchemy-postfork", "SQLAlchemy ORM on PostforkPool"),
    _orm("django", "orm-django", "Django ORM, stock backend, CONN_MAX_AGE = 0 (the default)"),
    _orm(
        "django persistent",
        "orm-django-persistent",
        "stock backend, CONN_MAX_AGE = 60, CONN_HEALTH_CHECKS",
    ),
    _orm("django on postfork", "orm-django-postfork", "Django ORM on the postfork.django backend"),
)

# Under an ASGI server: the Django ones, through Django's ASGI handler (SQLAlchemy's async engine
# is in ASGI_RECYCLING below).
ASGI_ORM = tuple(scenario for scenario in ORM if scenario.connect.startswith("orm-django"))


# Under an ASGI server: the service's ASGI twin on the asyncio pool, against what an asyncio
# user has today: SQLAlchemy's async engine (AsyncAdaptedQueuePool: lazy, with and without
# pre-ping) and the driver's own pool opened in the lifespan.
ASGI_RECYCLING = (
    _recycling("no-recycle", "warm", "warm in the lifespan, max-requests off: the ideal", False),
    _recycling("lazy", "lazy", "postfork's pool, connecting on a worker's first request"),
    _recycling("sqlalchemy-async", "sqlalchemy-async", "SQLAlchemy's async engine, its own pool"),
    _recycling(
        "sqlalchemy-async+pre_ping",
        "sqlalchemy-async-preping",
        "SQLAlchemy's async engine, its own pool with pool_pre_ping",
    ),
    _recycling("driver-pool", "driver-pool", "the driver's create_pool(minsize=1) in the lifespan"),
    _recycling("postfork", "postfork", "postfork.AsyncPool warm in the lifespan"),
    _recycling("warm", "warm", "postfork.AsyncPool warm in the lifespan, then a warm-up request"),
)
ASGI_RECYCLING_NAMES = tuple(scenario.name for scenario in ASGI_RECYCLING)


def select(names: list[str] | None, *, asgi: bool = False) -> tuple[Scenario, ...]:
    """The scenarios by name (always with no-recycle, the reference for the ratios); ``asgi``:
    the ASGI twin's."""
    every, known = (ASGI_RECYCLING, ASGI_RECYCLING_NAMES) if asgi else (RECYCLING, RECYCLING_NAMES)
    if not names:
        return every
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    wanted = {"no-recycle", *names}
    return tuple(scenario for scenario in every if scenario.name in wanted)
