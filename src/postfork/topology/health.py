"""What a member's server says about itself, read off the request path and judged here.

One query per member per check (``SHOW SLAVE STATUS`` on a replica, the ``wsrep_%`` status on
a Galera node, nothing but the round trip itself on a primary), turned into a
:class:`Verdict`: may this member serve, and if not, why, in words an operator can act on.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Galera's wsrep_local_state values (the documented state machine), by number
GALERA_STATES = {1: "Joining", 2: "Donor/Desynced", 3: "Joined", 4: "Synced"}
GALERA_SYNCED = 4


class Role(enum.Enum):
    PRIMARY = "primary"
    REPLICA = "replica"
    GALERA = "galera"  # a node of a multi-primary Galera cluster


class Health(enum.Enum):
    UNKNOWN = "unknown"  # not checked yet in this process
    UP = "up"
    LAGGING = "lagging"  # replicating, but further behind than max_replica_lag
    STOPPED = "stopped"  # a replica whose replication does not run: its data ages silently
    NOT_SYNCED = "not-synced"  # a Galera node not ready or not Synced (joining, donor, split)
    DOWN = "down"  # no connection, or a connection died


@dataclass(frozen=True)
class Verdict:
    health: Health
    lag: float | None = None  # seconds behind its primary, where the server says
    reason: str = ""  # why it may not serve (empty when UP)

    @property
    def serves(self) -> bool:
        return self.health is Health.UP


UP = Verdict(Health.UP)

# the statement each role's check runs (None: the round trip of the checkout is the check)
PROBES: dict[Role, str | None] = {
    Role.PRIMARY: None,
    Role.REPLICA: "SHOW SLAVE STATUS",
    Role.GALERA: "SHOW GLOBAL STATUS WHERE Variable_name IN "
    "('wsrep_ready', 'wsrep_local_state', 'wsrep_cluster_status')",
}


def judge_replica(
    status: Mapping[str, Any] | None,
    *,
    max_lag: float,
    primary_reachable: bool,
    behind_at_most: float | None = None,
) -> Verdict:
    """A replica serves while both replication threads run and it is at most ``max_lag``
    seconds behind. With the primary unreachable its I/O thread can only be reconnecting:
    nothing new is being written anywhere, so what it applied is the freshest data there is,
    and it serves (reads go on while the primary is down).

    With its I/O thread down while the primary answers, it serves as long as
    ``behind_at_most`` (its lag when a check last saw that thread running, plus the seconds
    since: a bound on how stale it can be) stays within ``max_lag``. A primary shutting down
    drops its replicas' connections a moment before it stops answering: read as stopped at
    once, every replica left together and the reads fell back to the dying primary."""
    if not status:
        return Verdict(Health.STOPPED, reason="replicates nothing (no SHOW SLAVE STATUS row)")
    sql_running = _field(status, "Slave_SQL_Running", "Replica_SQL_Running")
    io_running = _field(status, "Slave_IO_Running", "Replica_IO_Running")
    if sql_running != "Yes":
        error = _field(status, "Last_SQL_Error") or "stopped"
        return Verdict(Health.STOPPED, reason=f"replication SQL thread not running: {error}")
    lag = _field(status, "Seconds_Behind_Master", "Seconds_Behind_Source")
    if io_running != "Yes":
        if not primary_reachable:
            return Verdict(Health.UP, lag=None)
        if behind_at_most is not None and behind_at_most <= max_lag:
            return Verdict(Health.UP, lag=behind_at_most)
        error = _field(status, "Last_IO_Error") or io_running or "stopped"
        return Verdict(Health.STOPPED, reason=f"replication I/O thread not running: {error}")
    if lag is None:
        return Verdict(Health.STOPPED, reason="Seconds_Behind_Master is NULL")
    lag = float(lag)
    if lag > max_lag:
        return Verdict(
            Health.LAGGING, lag=lag, reason=f"{lag:g}s behind > max_replica_lag {max_lag:g}s"
        )
    return Verdict(Health.UP, lag=lag)


def replicating_now(status: Mapping[str, Any] | None) -> bool:
    """Both replication threads running: its ``Seconds_Behind_Master`` is current."""
    if not status:
        return False
    return all(
        _field(status, name, name.replace("Slave", "Replica")) == "Yes"
        for name in ("Slave_IO_Running", "Slave_SQL_Running")
    )


def judge_galera(status: Mapping[str, Any]) -> Verdict:
    """A Galera node serves only while ``wsrep_ready`` is ON, its ``wsrep_local_state`` is
    Synced (4) and it belongs to the Primary component: a Donor, a Joiner or a node cut off
    from the quorum answers queries with stale data or refuses them (ER_UNKNOWN_COM_ERROR)."""
    ready = str(status.get("wsrep_ready", "")).upper()
    state = _int(status.get("wsrep_local_state"))
    component = str(status.get("wsrep_cluster_status", ""))
    if ready != "ON":
        return Verdict(Health.NOT_SYNCED, reason=f"wsrep_ready={ready or 'missing'}")
    if component != "Primary":
        return Verdict(Health.NOT_SYNCED, reason=f"wsrep_cluster_status={component or 'missing'}")
    if state != GALERA_SYNCED:
        name = GALERA_STATES.get(state or 0, str(status.get("wsrep_local_state")))
        return Verdict(Health.NOT_SYNCED, reason=f"wsrep_local_state={state} ({name})")
    return UP


def rows_as_status(description: Any, rows: list[tuple[Any, ...]]) -> dict[str, Any] | None:
    """A one-row result (SHOW SLAVE STATUS) as a column->value dict; None for no row."""
    if not rows:
        return None
    names = [column[0] for column in description or ()]
    return dict(zip(names, rows[0], strict=False))


def pairs_as_status(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """A (Variable_name, Value) result (SHOW STATUS) as a dict."""
    return {_text(name): _text(value) for name, value in rows}


def _field(status: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in status:
            value = status[name]
            return _text(value) if isinstance(value, bytes) else value
    return None


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
