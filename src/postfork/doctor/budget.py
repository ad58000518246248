"""The connection budget of a deployment: hosts x processes x pool, per database server, against
what each server allows (``postfork doctor budget``).

Every worker process holds its own pool per server (a cluster: one per member), so the peak a
server sees is hosts x processes x ``max_size``, whatever the traffic; warm, it holds hosts x
processes x ``min_idle``. Recycling adds to that for a moment: a worker replaced by
``max-requests`` opens its connections while the server may still count the old worker's (its
threads end asynchronously), and a graceful reload (gunicorn HUP, uWSGI chain reload) runs the
old and new workers side by side. Nobody sees the sum until ``Too many connections``.
"""

from __future__ import annotations

import configparser
import dataclasses
import re
import runpy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from postfork.doctor.output import Say
from postfork.errors import ConfigError, DatabaseUnavailable, Error
from postfork.pool import Pool
from postfork.url import DatabaseURL


@dataclasses.dataclass(frozen=True)
class Shape:
    """How many pools a deployment runs: ``hosts`` x ``processes`` per host, each process with
    a pool of ``max_size`` (``min_idle`` kept open) per database server."""

    hosts: int = 1
    processes: int = 4
    max_size: int = 4
    min_idle: int = 1
    max_requests: int = 0  # recycling by request count (0: none)
    source: str = "command line"

    @property
    def peak(self) -> int:
        return self.hosts * self.processes * self.max_size

    @property
    def warm(self) -> int:
        return self.hosts * self.processes * self.min_idle


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one server allows, and who is connected now."""

    name: str
    role: str
    max_connections: int
    max_user_connections: int  # 0: no per-user limit (the global variable or the account's)
    connected: int  # Threads_connected when asked (ourselves included)
    max_used: int  # Max_used_connections since the server started
    thread_handling: str

    @property
    def ceiling(self) -> int:
        """What our user may open: the per-user limit where set and lower, else
        max_connections."""
        if self.max_user_connections:
            return min(self.max_user_connections, self.max_connections)
        return self.max_connections


@dataclasses.dataclass(frozen=True)
class Verdict:
    limits: Limits
    peak: int
    warm: int
    recycle_peak: int  # peak + what workers respawning at the same moment open at once

    @property
    def headroom(self) -> int:
        return self.limits.ceiling - self.peak

    @property
    def fits(self) -> bool:
        return self.headroom >= 0

    @property
    def fits_while_recycling(self) -> bool:
        return self.recycle_peak <= self.limits.ceiling


def judge(shape: Shape, limits: Limits, *, respawning: int | None = None) -> Verdict:
    """``respawning``: workers per host replaced at the same moment (default: all of them when
    they recycle by request count, as workers started together reach the limit together)."""
    together = shape.processes if respawning is None else respawning
    # a new worker opens min_idle before its first request, its predecessor may still count
    # max_size: with min_idle = max_size, recycling doubles those workers' connections
    extra = shape.hosts * together * max(shape.min_idle, 1) if shape.max_requests else 0
    return Verdict(limits, shape.peak, shape.warm, shape.peak + extra)


# -- the deployment's own files ----------------------------------------------------------------


def from_uwsgi_ini(path: Path, section: str = "uwsgi") -> dict[str, int]:
    """``processes`` (or ``workers``) and ``max-requests`` from a uWSGI ini file."""
    parser = configparser.RawConfigParser(strict=False, allow_no_value=True)
    try:
        read = parser.read(path)
    except configparser.Error as exc:
        raise ConfigError(f"{path}: not a uWSGI ini file: {exc}") from exc
    if not read:
        raise ConfigError(f"{path}: cannot read it")
    if not parser.has_section(section):
        raise ConfigError(f"{path}: no [{section}] section")
    values = dict(parser.items(section))
    found = {
        "processes": _number(path, values, "processes", "workers", "p"),
        "max_requests": _number(path, values, "max-requests", "max_requests"),
    }
    return {key: value for key, value in found.items() if value is not None}


def from_gunicorn_config(path: Path) -> dict[str, int]:
    """``workers`` and ``max_requests`` from a gunicorn configuration file (run as gunicorn
    runs it: it is Python)."""
    try:
        namespace = runpy.run_path(str(path))
    except (OSError, SyntaxError) as exc:
        raise ConfigError(f"{path}: cannot load it as a gunicorn configuration: {exc}") from exc
    found = {
        "processes": _as_int(path, "workers", namespace.get("workers")),
        "max_requests": _as_int(path, "max_requests", namespace.get("max_requests")),
    }
    return {key: value for key, value in found.items() if value is not None}


def _number(path: Path, values: dict[str, Any], *names: str) -> int | None:
    for name in names:
        if values.get(name) is not None:
            return _as_int(path, name, values[name])
    return None


def _as_int(path: Path, name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if not re.fullmatch(r"\d+", text):
        raise ConfigError(
            f"{path}: {name} = {text!r} is not a number postfork can read (a placeholder?): "
            f"give it on the command line"
        )
    return int(text)


# -- the servers' side -------------------------------------------------------------------------

_LIMITS_SQL = (
    "SELECT @@GLOBAL.max_connections, @@GLOBAL.max_user_connections, @@GLOBAL.thread_handling"
)


def read_limits(url: DatabaseURL, role: str, name: str) -> Limits:
    """Ask the server (one connection, closed at once)."""
    try:
        with Pool(url, min_idle=0, max_size=1, autocommit=True) as pool, pool.connection() as conn:
            cursor = conn.cursor()
            cursor.execute(_LIMITS_SQL)
            max_connections, max_user, thread_handling = cursor.fetchone()
            account_limit = _account_limit(cursor)
            cursor.execute(
                "SHOW GLOBAL STATUS WHERE Variable_name IN "
                "('Threads_connected', 'Max_used_connections')"
            )
            status = {str(key): int(value) for key, value in cursor.fetchall()}
    except Error as exc:
        raise DatabaseUnavailable(f"{role} {name}: {exc}") from exc
    user_limit = account_limit or int(max_user)
    return Limits(
        name=name,
        role=role,
        max_connections=int(max_connections),
        max_user_connections=user_limit,
        connected=status.get("Threads_connected", 0),
        max_used=status.get("Max_used_connections", 0),
        thread_handling=str(thread_handling),
    )


def _account_limit(cursor: Any) -> int:
    """The account's own ``MAX_USER_CONNECTIONS`` (0: none), from ``SHOW GRANTS``: every user
    may read its own, unlike ``mysql.user``."""
    cursor.execute("SHOW GRANTS")
    for (grant,) in cursor.fetchall():
        found = _USER_LIMIT.search(str(grant))
        if found and int(found.group(1)) > 0:
            return int(found.group(1))
    return 0


_USER_LIMIT = re.compile(r"MAX_USER_CONNECTIONS (\d+)", re.IGNORECASE)


# -- the report --------------------------------------------------------------------------------


def report(shape: Shape, verdicts: Sequence[Verdict], say: Say) -> bool:
    """Print the budget; True when every server fits at peak (recycling included)."""
    say(
        f"deployment {shape.hosts} host(s) x {shape.processes} process(es) x a pool of "
        f"max_size {shape.max_size} (min_idle {shape.min_idle}) per server  [{shape.source}]"
    )
    ok = True
    for verdict in verdicts:
        ok = _report_one(shape, verdict, say) and ok
    if shape.max_requests:
        say(
            f"recycling  max-requests {shape.max_requests}: a replaced worker connects while the "
            "server may still count its predecessor's sessions; counted above as every worker "
            "of a host respawning at once (their limits are reached together)"
        )
    if any(v.limits.thread_handling != "pool-of-threads" and v.peak > 500 for v in verdicts):
        say(
            "threads    one-thread-per-connection with hundreds of connections: see the docs "
            "(how-to/topology: MariaDB's thread pool, thread_handling = pool-of-threads)"
        )
    return ok


def _report_one(shape: Shape, verdict: Verdict, say: Say) -> bool:
    limits = verdict.limits
    user = (
        f", max_user_connections {limits.max_user_connections}"
        if limits.max_user_connections
        else ""
    )
    say(
        f"{limits.role:<10} {limits.name}: max_connections {limits.max_connections}{user}; "
        f"connected now {limits.connected}, most ever {limits.max_used}"
    )
    formula = f"{shape.hosts} x {shape.processes} x {shape.max_size}"
    state = (
        f"headroom {verdict.headroom}"
        if verdict.fits
        else f"OVER by {-verdict.headroom}: workers will get 'Too many connections' (1040)"
    )
    say(f"{'':<10} peak {verdict.peak} ({formula}) of {limits.ceiling}: {state}")
    say(f"{'':<10} warm {verdict.warm} (min_idle in every process)")
    if verdict.recycle_peak > verdict.peak:
        over = verdict.recycle_peak - limits.ceiling
        say(
            f"{'':<10} while recycling up to {verdict.recycle_peak}"
            + (
                f": WARNING, over {limits.ceiling} by {over}; stagger recycling (gunicorn "
                "max_requests_jitter, uWSGI max-requests-delta) or lower max_size"
                if over > 0
                else f" of {limits.ceiling}"
            )
        )
    return verdict.fits and verdict.fits_while_recycling
