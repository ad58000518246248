"""The one place that reads postfork's environment variables.

Precedence everywhere: an explicit argument, then the environment, then a built-in default.
Other modules name the variables they use and read them through these functions, so a bad value
always fails the same way: one ConfigError naming the variable and what it accepts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import ConfigError
from .validate import Number

DATABASE_URL_VAR = "DATABASE_URL"
REPLICA_URLS_VAR = "POSTFORK_REPLICA_URLS"
STATE_DIR_VAR = "POSTFORK_STATE_DIR"
ACCELERATE_VAR = "POSTFORK_ACCELERATE_RESPAWNS"
METRICS_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"


def text(name: str, default: str = "") -> str:
    """The variable, stripped; ``default`` when unset or blank."""
    return os.environ.get(name, "").strip() or default


def choice(name: str, default: str, choices: Sequence[str]) -> str:
    value = text(name, default)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def number(name: str, default: float, kind: Number) -> float:
    raw = text(name)
    return kind.parse_setting(name, raw) if raw else default


def switch(name: str, default: bool, *, on: str = "true", off: str = "false") -> bool:
    return choice(name, on if default else off, (on, off)) == on


def database_url() -> str | None:
    """``DATABASE_URL`` when set and not blank."""
    return text(DATABASE_URL_VAR) or None


def replica_urls() -> list[str]:
    """``POSTFORK_REPLICA_URLS``: comma-separated replica URLs (``postfork db start --replicas``
    prints it), or none."""
    return [url.strip() for url in text(REPLICA_URLS_VAR).split(",") if url.strip()]


def state_dir() -> Path:
    """Where the embedded MariaDB records what it started (``POSTFORK_STATE_DIR`` or XDG cache)."""
    explicit = text(STATE_DIR_VAR)
    if explicit:
        return Path(explicit)
    cache = text("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "postfork"


def accelerate_respawns() -> bool:
    """``POSTFORK_ACCELERATE_RESPAWNS`` (default true): the uWSGI respawn accelerator."""
    return switch(ACCELERATE_VAR, True)


def metrics_dir() -> str:
    """``PROMETHEUS_MULTIPROC_DIR``: the directory a server's workers share their metrics in."""
    return text(METRICS_DIR_VAR)


def export(name: str, value: str) -> None:
    """Set a variable for this process and the children it starts (e.g. a metrics directory
    created by the process that loads the app, inherited by its workers)."""
    os.environ[name] = value


def fast_worker_exit() -> bool:
    """``POSTFORK_FAST_WORKER_EXIT``: a worker recycled by max-requests (gunicorn's
    max_requests, uWSGI's max-requests) leaves right after its exit hooks, without the
    teardown that follows (default true)."""
    return switch("POSTFORK_FAST_WORKER_EXIT", True)


def freeze_gc() -> bool:
    """``POSTFORK_GC_FREEZE``: each worker freezes what it inherited from the master out of the
    garbage collector's reach, so copy-on-write keeps those pages shared (default false)."""
    return switch("POSTFORK_GC_FREEZE", False)
