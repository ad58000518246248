"""A private MariaDB primary with N replicas: real asynchronous replication on this machine.

Each server is its own ``mariadbd`` (:class:`EmbeddedMariaDB`) on its own datadir, unix socket
and loopback port; the replicas follow the primary by GTID over TCP on 127.0.0.1 (MariaDB
replication has no unix-socket transport), or over a test's network namespace link
(:class:`Network`). Used by ``postfork db start --replicas N`` and by
the topology tests, which stop a replica's SQL thread, kill a replica or stop the primary.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postfork import environment
from postfork.errors import DatabaseUnavailable
from postfork.topology.health import judge_replica
from postfork.url import DatabaseURL
from postfork_tools.embedded import EmbeddedMariaDB, _alive

log = logging.getLogger("postfork.replication")

REPLICATION_USER = "postfork_repl"
_PRIMARY_OPTIONS = ("--server-id=1", "--log-bin=primary-bin", "--binlog-format=ROW")


def free_port() -> int:
    """A loopback port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _replica_options(index: int) -> tuple[str, ...]:
    return (
        f"--server-id={index + 2}",
        "--relay-log=replica-relay",
        "--read-only",  # a write meant for the primary fails here instead of forking history
        "--skip-slave-start",  # replicates once told where from (start()), also after a restart
    )


@dataclass(frozen=True)
class Network:
    """Where the servers listen and how the replicas reach the primary: loopback by default;
    a test puts the replicas in a network namespace of its own to cut them off for real."""

    primary_bind: str = "127.0.0.1"
    primary_host: str = "127.0.0.1"  # the primary's address as the replicas reach it
    replica_bind: str = "127.0.0.1"
    replica_wrapper: tuple[str, ...] = ()  # e.g. ("ip", "netns", "exec", name)


class EmbeddedReplicaSet:
    """One primary and ``replicas`` replicas; ``start()``, ``primary``, ``replicas``, ``stop()``.

    ``server_args`` go to every server (e.g. ``["--max-connections=500"]``).
    """

    def __init__(
        self,
        replicas: int = 2,
        *,
        base: Path | None = None,
        server_args: Sequence[str] = (),
        network: Network = Network(),
    ) -> None:
        if replicas < 1:
            raise ValueError("a replica set needs at least one replica")
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="postfork-replicas-"))
        self.password = secrets.token_hex(8)  # the replication user's
        self.network = network
        self.primary = EmbeddedMariaDB(
            self.base / "primary",
            port=free_port(),
            server_args=(*_PRIMARY_OPTIONS, *server_args),
            bind_address=network.primary_bind,
        )
        self.replicas = [
            EmbeddedMariaDB(
                self.base / f"replica{index + 1}",
                port=free_port(),
                server_args=(*_replica_options(index), *server_args),
                bind_address=network.replica_bind,
                wrapper=network.replica_wrapper,
            )
            for index in range(replicas)
        ]

    @property
    def members(self) -> list[EmbeddedMariaDB]:
        return [self.primary, *self.replicas]

    @property
    def primary_url(self) -> DatabaseURL:
        return self.primary.url

    @property
    def replica_urls(self) -> list[DatabaseURL]:
        return [replica.url for replica in self.replicas]

    def start(self, timeout: float = 60.0, *, detach: bool = False) -> EmbeddedReplicaSet:
        """Start every server, point the replicas at the primary, wait until they follow it."""
        try:
            self.primary.start(timeout, detach=detach)
            self.primary.execute(
                f"CREATE USER IF NOT EXISTS '{REPLICATION_USER}'@'%' "
                f"IDENTIFIED BY '{self.password}'"
            )  # the primary listens on loopback (or a test's namespace link) only
            self.primary.execute(f"GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'%'")
            for replica in self.replicas:
                replica.start(timeout, detach=detach)
                self.follow(replica)
            self.wait_for_replicas(timeout)
        except BaseException:
            log.warning("replica set failed to start; stopping %s", describe(self))
            self.stop()
            raise
        log.info("replica set ready: %s", describe(self))
        return self

    def follow(self, replica: EmbeddedMariaDB) -> None:
        """(Re)point ``replica`` at the primary by GTID and start replicating."""
        replica.execute("STOP SLAVE")
        replica.execute(
            f"CHANGE MASTER TO MASTER_HOST='{self.network.primary_host}', "
            f"MASTER_PORT={self.primary.port}, "
            f"MASTER_USER='{REPLICATION_USER}', MASTER_PASSWORD='{self.password}', "
            "MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos"
        )
        replica.execute("START SLAVE")

    def wait_for_replicas(self, timeout: float = 30.0) -> None:
        """Until every running replica has applied everything the primary wrote so far and
        says so itself: both threads running, ``Seconds_Behind_Master`` 0. Right after a
        ``START SLAVE`` a replica that holds every event can still report a NULL or a stale
        lag for a moment, and a cluster checking it then would rightly leave it."""
        position = self.primary.execute("SELECT @@gtid_binlog_pos")[0][0]
        for replica in self.replicas:
            if replica.pid is None:
                continue
            waited = replica.execute(f"SELECT MASTER_GTID_WAIT('{position}', {timeout:g})")[0][0]
            if waited != 0:
                raise DatabaseUnavailable(
                    f"replica on port {replica.port} did not reach the primary's position "
                    f"{position} within {timeout:g}s: {replica_status(replica)}"
                )
            wait_until(
                lambda replica=replica: _caught_up(replica),
                timeout,
                f"replica on port {replica.port} reporting itself caught up",
            )

    def stop(self) -> None:
        """Stop every server and delete the datadirs."""
        for server in reversed(self.members):
            with contextlib.suppress(Exception):
                server.terminate()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> EmbeddedReplicaSet:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the set `postfork db start --replicas N` leaves running -----------------------------

    def save_state(self) -> None:
        state = {
            "base": str(self.base),
            "password": self.password,
            "servers": [
                {"base": str(server.base), "port": server.port, "pid": server.pid}
                for server in self.members
            ],
        }
        _state_file().parent.mkdir(parents=True, exist_ok=True)
        _state_file().write_text(json.dumps(state))
        _state_file().chmod(0o600)

    @classmethod
    def from_state(cls) -> EmbeddedReplicaSet | None:
        """The set a previous ``postfork db start --replicas N`` left running, if any of its
        servers still runs (a set with a dead member must still be found, to be stopped)."""
        try:
            state = json.loads(_state_file().read_text())
        except (OSError, ValueError):
            return None
        servers = []
        for entry in state["servers"]:
            server = EmbeddedMariaDB(Path(entry["base"]), port=entry["port"])
            server.pid = entry["pid"] if entry["pid"] and _alive(entry["pid"]) else None
            servers.append(server)
        if all(server.pid is None for server in servers):
            return None
        found = cls.__new__(cls)
        found.base, found.password = Path(state["base"]), state["password"]
        found.primary, found.replicas = servers[0], servers[1:]
        return found

    @staticmethod
    def forget_state() -> None:
        _state_file().unlink(missing_ok=True)


def replica_status(replica: EmbeddedMariaDB) -> dict[str, Any]:
    """The replica's ``SHOW SLAVE STATUS`` row as a dict (empty when it replicates nothing)."""
    names, rows = replica.query("SHOW SLAVE STATUS")
    return dict(zip(names, rows[0], strict=True)) if rows else {}


def _caught_up(replica: EmbeddedMariaDB) -> bool:
    """What a Cluster would judge fresh with no lag allowed at all."""
    status = replica_status(replica) or None
    return judge_replica(status, max_lag=0.0, primary_reachable=True).serves


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate()`` until true; DatabaseUnavailable naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise DatabaseUnavailable(f"{what}: not within {timeout:g}s")
        time.sleep(interval)


def _state_file() -> Path:
    return environment.state_dir() / "replicas.json"


def describe(replica_set: EmbeddedReplicaSet) -> str:
    """For logs: ports and pids, never the password."""
    return ", ".join(
        f"{'primary' if server is replica_set.primary else 'replica'} :{server.port} "
        f"(pid {server.pid})"
        for server in replica_set.members
    )
