"""What ``postfork bench`` runs: the story's scenarios and the recycling-storm variants.

Every scenario is the same reference service on the same data behind the same delay proxy;
only the connection strategy (``POSTFORK_CONNECT``) and the recycling options differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Scenario:
    name: str
    connect: str  # POSTFORK_CONNECT: warm, postfork, lazy, sqlalchemy
    recycle: bool  # False: max-requests off
    summary: str
    env: dict[str, str] = field(default_factory=dict)
    uwsgi: tuple[str, ...] = ()  # extra server options
    gunicorn: tuple[str, ...] = ()

    def extra(self, server: str) -> tuple[str, ...]:
        return self.uwsgi if server == "uwsgi" else self.gunicorn


# Recycling exactly as in the story: every worker after exactly max-requests requests (no
# per-worker spread), so exactly 1 request in max-requests is a new worker's first.
_EXACT = {"uwsgi": ("--max-requests-delta", "0"), "gunicorn": ("--max-requests-jitter", "0")}


def _story(name: str, connect: str, summary: str, recycle: bool = True) -> Scenario:
    return Scenario(
        name, connect, recycle, summary, uwsgi=_EXACT["uwsgi"], gunicorn=_EXACT["gunicorn"]
    )


STORY = (
    _story("no-recycle", "warm", "warm, max-requests off: the ideal", recycle=False),
    _story("lazy", "lazy", "connect on a worker's first request: the story's before"),
    _story("postfork", "postfork", "connect right after fork, nothing else: the story's fix"),
    _story("warm", "warm", "postfork.install: driver set up in the master, connect + warm-up"),
    _story("sqlalchemy", "sqlalchemy", "SQLAlchemy QueuePool + pool_pre_ping, lazy connect"),
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
        uwsgi=(
            "--min-worker-lifetime",
            "10",
            "--max-requests-delta",
            "0",
            "--forkbomb-delay",
            "2",
        ),
        gunicorn=("--max-requests-jitter", "0"),
    ),
    Scenario(
        "storm: shipped",
        "warm",
        True,
        "the shipped deploy/ configuration (staggered, accelerated)",
    ),
)

STORY_NAMES = tuple(scenario.name for scenario in STORY)


def _orm(name: str, connect: str, summary: str) -> Scenario:
    """The summary endpoint through an ORM; metrics off in all five (stock ORMs have none)."""
    return Scenario(
        name,
        connect,
        True,
        summary,
        env={"POSTFORK_METRICS": "off"},
        uwsgi=_EXACT["uwsgi"],
        gunicorn=_EXACT["gunicorn"],
    )


# ``postfork bench --orm``: the same endpoint, data, proxy and recycling, through an ORM.
ORM = (
    _orm("sqlalchemy", "orm-sqlalchemy", "SQLAlchemy ORM, QueuePool + pool_pre_ping"),
    _orm("sqlalchemy on postfork", "orm-sqlalchemy-postfork", "SQLAlchemy ORM on PostforkPool"),
    _orm("django", "orm-django", "Django ORM, stock backend, CONN_MAX_AGE = 0 (the default)"),
    _orm(
        "django persistent",
        "orm-django-persistent",
        "stock backend, persistent connections, CONN_HEALTH_CHECKS",
    ),
    _orm("django on postfork", "orm-django-postfork", "Django ORM on the postfork.django backend"),
)


def select(names: list[str] | None) -> tuple[Scenario, ...]:
    """The story scenarios by name (always with no-recycle, the reference for the ratios)."""
    if not names:
        return STORY
    unknown = sorted(set(names) - set(STORY_NAMES))
    if unknown:
        raise ValueError(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(STORY_NAMES)}"
        )
    wanted = {"no-recycle", *names}
    return tuple(scenario for scenario in STORY if scenario.name in wanted)
