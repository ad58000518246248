"""The one place that reads postfork's environment variables.

Precedence everywhere: an explicit argument, then the environment, then a built-in default.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .errors import ConfigError

DATABASE_URL_VAR = "DATABASE_URL"
STATE_DIR_VAR = "POSTFORK_STATE_DIR"


def database_url_from_env() -> str | None:
    """``DATABASE_URL`` when set and not blank."""
    value = os.environ.get(DATABASE_URL_VAR, "").strip()
    return value or None


def state_dir() -> Path:
    """Where the embedded MariaDB records what it started (``POSTFORK_STATE_DIR`` or XDG cache)."""
    explicit = os.environ.get(STATE_DIR_VAR, "").strip()
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(cache) / "postfork"


CONNECT_MODES = ("warm", "postfork", "lazy", "sqlalchemy")


@dataclasses.dataclass(frozen=True)
class ServiceSettings:
    """How the reference service runs, from ``POSTFORK_*`` variables (see the README)."""

    database_url: str
    # warm: full warm-up; postfork: connect after fork only; lazy: on demand;
    # sqlalchemy: SQLAlchemy's QueuePool with pool_pre_ping (the bench's baseline)
    connect: str = "warm"
    driver: str = "mysqlclient"
    pool_size: int = 2
    checkout_timeout: float = 2.0
    connect_timeout: float = 2.0
    log_level: str = "INFO"
    access_log: str = "logfmt"  # logfmt, json or off: one line per request (postfork.access)
    profile: str = ""  # ProfileSettings text, e.g. "every=100,first=1"; empty: no profiling
    metrics: bool = True  # /metrics, aggregated over the server's workers


def accelerate_respawns() -> bool:
    """``POSTFORK_ACCELERATE_RESPAWNS`` (default true): the uWSGI respawn accelerator."""
    return _choice("POSTFORK_ACCELERATE_RESPAWNS", "true", ("true", "false")) == "true"


def service_settings() -> ServiceSettings:
    url = database_url_from_env()
    if not url:
        raise ConfigError(
            f"{DATABASE_URL_VAR} is not set: the service needs mysql://user:password@host:port/db "
            "(postfork serve sets it for you)"
        )
    connect = _choice("POSTFORK_CONNECT", "warm", CONNECT_MODES)
    driver = _choice("POSTFORK_DRIVER", "mysqlclient", ("mysqlclient", "pymysql"))
    return ServiceSettings(
        database_url=url,
        connect=connect,
        driver=driver,
        pool_size=int(_number("POSTFORK_POOL_SIZE", 2, integer=True)),
        checkout_timeout=_number("POSTFORK_CHECKOUT_TIMEOUT", 2.0),
        connect_timeout=_number("POSTFORK_CONNECT_TIMEOUT", 2.0),
        log_level=_choice("POSTFORK_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        access_log=_choice("POSTFORK_ACCESS_LOG", "logfmt", ("logfmt", "json", "off")),
        profile=os.environ.get("POSTFORK_PROFILE", "").strip(),
        metrics=_choice("POSTFORK_METRICS", "on", ("on", "off")) == "on",
    )


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, "").strip() or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _number(name: str, default: float, *, integer: bool = False) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = -1
    if not 0 < value < float("inf"):
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name} must be {kind}, got {text!r}")
    return value
