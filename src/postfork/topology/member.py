"""One server of a topology: its pool, its role, and what the last check found.

A member's health changes in two ways only: a check (off the request path, one query) or a
failure seen on the way (a connect refused, a connection that died in a read), which takes it
out at once; only a check brings it back.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from ..errors import DeadlineExceeded, PoolTimeout
from ..pool import Pool, deadline
from ..url import DatabaseURL
from .health import (
    PROBES,
    UP,
    Health,
    Role,
    Verdict,
    judge_galera,
    judge_replica,
    pairs_as_status,
    replicating_now,
    rows_as_status,
)

log = logging.getLogger("postfork.topology")


class Member:
    """A server in a :class:`~postfork.topology.Cluster`: ``name`` (host:port or socket, no
    password), ``role``, its own :class:`~postfork.Pool`, and the latest :class:`Verdict`."""

    def __init__(self, pool: Pool, role: Role, name: str, *, owns_pool: bool = True) -> None:
        self.pool = pool
        self.owns_pool = owns_pool  # made by the cluster (else an ORM's: its upkeep is theirs)
        self.role = role
        self.name = name
        self.verdict = Verdict(Health.UNKNOWN, reason="not checked yet")
        self.left = 0  # times this process took it out of rotation
        # a replica's lag when a check last saw its I/O thread running, and when (monotonic)
        self._replicating: tuple[float, float] | None = None
        self._status: dict[str, Any] | None = None  # a replica's last SHOW SLAVE STATUS

    @property
    def health(self) -> Health:
        return self.verdict.health

    @property
    def serves(self) -> bool:
        return self.verdict.health is Health.UP

    def check(
        self, *, max_lag: float, primary_reachable: bool, timeout: float
    ) -> tuple[Verdict, Verdict]:
        """Ask the server (one round trip, bounded by ``timeout``); returns (before, after).

        With no idle connection the check must connect first, and gets ``timeout`` rounded up
        to whole seconds more for that: mysqlclient's connect timeout is whole seconds, and
        within a deadline under one second it could never connect (a member whose
        connections were all discarded, or a pool at ``min_idle=0``, would stay down). With
        every connection in use the wait may end empty-handed: that member is busy serving,
        so its verdict stands until the next check."""
        before = self.verdict
        if self.pool.closed:  # the process is leaving (a check raced its exit): no verdict
            return before, before
        idle, in_use = self.pool.counts()
        busy = not idle and in_use >= self.pool.options.max_size
        seconds = timeout if idle else timeout + math.ceil(timeout)
        try:
            with deadline(seconds), self.pool.connection() as conn:
                verdict = self._probe(conn, max_lag=max_lag, primary_reachable=primary_reachable)
        except Exception as exc:  # postfork's or the driver's (a connection died mid-check)
            if busy and isinstance(exc, DeadlineExceeded | PoolTimeout):
                log.debug("%s: not checked, its connections are all in use", self.describe())
                return before, before
            verdict = Verdict(Health.DOWN, reason=self.pool.describe_error(exc))
        self.set(verdict)
        return before, verdict

    def _probe(self, conn: Any, *, max_lag: float, primary_reachable: bool) -> Verdict:
        statement = PROBES[self.role]
        cursor = conn.cursor()
        try:
            cursor.execute(statement or "SELECT 1")
            rows = list(cursor.fetchall())
            description = cursor.description
        finally:
            cursor.close()
        if self.role is Role.REPLICA:
            self._status = rows_as_status(description, rows)
            verdict = self._judge(max_lag=max_lag, primary_reachable=primary_reachable)
            if replicating_now(self._status) and verdict.lag is not None:
                self._replicating = (verdict.lag, time.monotonic())
            return verdict
        if self.role is Role.GALERA:
            return judge_galera(pairs_as_status(rows))
        return UP

    def _judge(self, *, max_lag: float, primary_reachable: bool) -> Verdict:
        seen = self._replicating
        return judge_replica(
            self._status,
            max_lag=max_lag,
            primary_reachable=primary_reachable,
            behind_at_most=None if seen is None else seen[0] + time.monotonic() - seen[1],
        )

    def primary_left(self, *, max_lag: float) -> None:
        """The primary stopped answering after this replica's last check: judge its last
        answer again (no I/O) as if the check had found the primary down. A replica whose
        I/O thread was down while the primary still answered (a primary on its way down
        drops its replicas first) was left then; with the primary gone it holds the
        freshest data there is, and reads need it now, not at the next check."""
        if self.verdict.health is Health.STOPPED:  # only a check's judge_replica says so
            self.set(self._judge(max_lag=max_lag, primary_reachable=False))

    def set(self, verdict: Verdict) -> None:
        if self.verdict.serves and not verdict.serves:
            self.left += 1
        self.verdict = verdict

    def fail(self, exc: BaseException) -> None:
        """A failure seen while serving (connect refused, connection lost): out at once."""
        text = self.pool.describe_error(exc)
        if self.serves:
            log.warning("%s %s left: %s", self.role.value, self.name, text)
        self.set(Verdict(Health.DOWN, reason=text))

    def describe(self) -> str:
        verdict = self.verdict
        lag = f", {verdict.lag:g}s behind" if verdict.lag is not None else ""
        why = f": {verdict.reason}" if verdict.reason else ""
        return f"{self.role.value} {self.name} {verdict.health.value}{lag}{why}"

    def stats(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "name": self.name,
            "role": self.role.value,
            "health": verdict.health.value,
            "lag": verdict.lag,
            "reason": verdict.reason,
            "left": self.left,
            "pool": self.pool.stats(),
        }

    def __repr__(self) -> str:
        return f"<Member {self.describe()}>"


def server_name(url: DatabaseURL) -> str:
    """How a member is named in logs, stats and metrics: host:port or its socket, no password."""
    socket = url.options.get("unix_socket")
    return str(socket) if socket else f"{url.host}:{url.port}"
