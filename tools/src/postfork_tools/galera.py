"""A private three-node (or N-node) Galera cluster on this machine: MariaDB with Debian's
``galera-4`` provider, each node its own ``mariadbd`` on its own datadir, client port, group
communication port and state-transfer ports, all on 127.0.0.1. Joiners copy the data by rsync
(SST). Used by the topology tests: a node leaves (stopped, or desynced as a donor) and rejoins.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from postfork.errors import ConfigError, DatabaseUnavailable
from postfork.url import DatabaseURL
from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.replication import free_port, wait_until

log = logging.getLogger("postfork.galera")

RUN_AS = "mysql"  # the account Debian's MariaDB package creates
PROVIDERS = ("/usr/lib/galera/libgalera_smm.so", "/usr/lib/libgalera_smm.so")
_GALERA_OPTIONS = (
    "--wsrep-on=ON",
    "--wsrep-cluster-name=postfork",
    "--wsrep-sst-method=rsync",
    "--binlog-format=ROW",
    "--default-storage-engine=InnoDB",
    "--innodb-autoinc-lock-mode=2",  # interleaved: what Galera's parallel applying needs
)


def provider() -> str:
    for path in PROVIDERS:
        if Path(path).exists():
            return path
    raise ConfigError(
        "Galera's provider (libgalera_smm.so) is not installed: apt-get install galera-4 rsync"
    )


class GaleraNode(EmbeddedMariaDB):
    """One node: an :class:`EmbeddedMariaDB` with its own group and state-transfer ports."""

    def __init__(self, base: Path, index: int) -> None:
        self.index = index
        self.gcomm_port, self.ist_port, self.sst_port = free_port(), free_port(), free_port()
        super().__init__(base, port=free_port())
        self.cluster_address = "gcomm://"  # set by the cluster before the node starts

    def _command(self) -> list[str]:
        return [*super()._command(), *self._galera_args()]

    def _user_args(self) -> list[str]:
        """As root, the node runs as ``mysql``: the state transfer's rsync daemon, started by
        the joiner, drops root for ``nobody`` (who may not write the datadir) unless it is not
        root in the first place."""
        return [f"--user={RUN_AS}"] if os.geteuid() == 0 else []

    def _install(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base, RUN_AS, RUN_AS)
        super()._install()

    def _galera_args(self) -> list[str]:
        return [
            *_GALERA_OPTIONS,
            f"--wsrep-provider={provider()}",
            f"--wsrep-node-name=node{self.index + 1}",
            f"--wsrep-node-address=127.0.0.1:{self.gcomm_port}",
            f"--wsrep-cluster-address={self.cluster_address}",
            f"--wsrep-sst-receive-address=127.0.0.1:{self.sst_port}",
            "--wsrep-provider-options="
            f"gmcast.listen_addr=tcp://127.0.0.1:{self.gcomm_port};"
            f"ist.recv_addr=127.0.0.1:{self.ist_port};"
            "gcache.size=32M;pc.wait_prim_timeout=PT10S",
        ]

    def status(self) -> dict[str, str]:
        rows = self.execute("SHOW GLOBAL STATUS LIKE 'wsrep_%'")
        return {str(name): str(value) for name, value in rows}

    def synced(self) -> bool:
        try:
            status = self.status()
        except DatabaseUnavailable:
            return False
        return status.get("wsrep_local_state") == "4" and status.get("wsrep_ready") == "ON"


class EmbeddedGaleraCluster:
    """``nodes`` Galera nodes: ``start()``, ``nodes``, ``urls``, ``stop()``. The first node
    bootstraps the cluster; the others join it and receive its data by rsync."""

    def __init__(self, nodes: int = 3, *, base: Path | None = None) -> None:
        if nodes < 2:
            raise ValueError("a Galera cluster here has at least two nodes")
        if shutil.which("rsync") is None:
            raise ConfigError(
                "rsync is not installed (Galera's state transfer): apt-get install rsync"
            )
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="postfork-galera-"))
        self.base.chmod(0o755)  # the nodes run as mysql (see GaleraNode._user_args)
        self.nodes = [GaleraNode(self.base / f"node{index + 1}", index) for index in range(nodes)]

    @property
    def urls(self) -> list[DatabaseURL]:
        return [node.url for node in self.nodes]

    def address(self, *, without: GaleraNode | None = None) -> str:
        peers = [f"127.0.0.1:{node.gcomm_port}" for node in self.nodes if node is not without]
        return "gcomm://" + ",".join(peers)

    def start(self, timeout: float = 120.0) -> EmbeddedGaleraCluster:
        try:
            first, *others = self.nodes
            first.cluster_address = "gcomm://"  # bootstrap a new cluster
            first.start(timeout)
            for node in others:
                self.join(node, timeout)
            first.cluster_address = self.address(without=first)  # rejoins, never re-bootstraps
        except BaseException:
            self.stop()
            raise
        log.info("Galera cluster ready: %s", ", ".join(f":{n.port}" for n in self.nodes))
        return self

    def join(self, node: GaleraNode, timeout: float = 120.0) -> None:
        """(Re)start ``node`` as a member of the running cluster; returns once it is Synced."""
        node.cluster_address = self.address(without=node)
        node.start(timeout)
        wait_until(node.synced, timeout, f"Galera node{node.index + 1} synced")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            with contextlib.suppress(Exception):
                node.terminate()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> EmbeddedGaleraCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
