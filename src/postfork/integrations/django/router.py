"""Django's reads on fresh replicas:
``DATABASE_ROUTERS = ["postfork.django.router.ReplicaRouter"]``.

The replicas are the ``DATABASES`` entries Django already knows as such: those whose
``TEST["MIRROR"]`` names the primary's alias (so Django's test runner, too, reads them as the
primary). For each primary with mirrors, a :class:`~postfork.Cluster` over the aliases' own
postfork pools chooses where a read goes from what its checks found (no round trip); writes, and
every query inside ``transaction.atomic()`` on the primary, go to the primary, and so do reads
in the same thread for the cluster's ``read_your_writes`` window after a write.
``settings.POSTFORK_TOPOLOGY`` holds the cluster's options (``max_replica_lag``,
``check_interval``, ``check_timeout``, ``read_your_writes``, ``fallback``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from ...errors import ConfigError
from ...install import install
from ...topology import Cluster
from ...topology.cluster import CLUSTER_OPTIONS

log = logging.getLogger("postfork.django")

TOPOLOGY_SETTING = "POSTFORK_TOPOLOGY"


def mirrors(databases: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """{primary alias: [replica aliases]} from each entry's ``TEST["MIRROR"]``."""
    found: dict[str, list[str]] = {}
    for alias, settings in databases.items():
        primary = (settings.get("TEST") or {}).get("MIRROR")
        if primary:
            if primary not in databases:
                raise ConfigError(
                    f"DATABASES[{alias!r}]['TEST']['MIRROR'] names no database: {primary!r}"
                )
            found.setdefault(primary, []).append(alias)
    return found


class _Topology:
    """One cluster per primary alias (per process: built at start-up, installed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # primary -> (cluster, member name -> alias)
        self.clusters: dict[str, tuple[Cluster, dict[str, str]]] = {}
        self._replicas: dict[str, list[str]] | None = None  # DATABASES' mirrors, read once

    def replicas(self) -> dict[str, list[str]]:
        """{primary alias: replica aliases}: read from the settings once, not on every query
        (the router asks for each one)."""
        if self._replicas is None:
            from django.conf import settings

            self._replicas = mirrors(settings.DATABASES)
        return self._replicas

    def build_all(self) -> None:
        """At start-up (the app's ready()), when the router is configured: every cluster made
        and installed now, so workers warm and check them before their first request."""
        from django.conf import settings

        if any(path.endswith("ReplicaRouter") for path in settings.DATABASE_ROUTERS):
            for primary in self.replicas():
                self.cluster_for(primary)

    def cluster_for(self, primary: str) -> tuple[Cluster, dict[str, str]] | None:
        found = self.clusters.get(primary)
        if found is None and primary in self.replicas():
            with self._lock:
                found = self.clusters.get(primary) or self._build(primary)
        return found

    def _build(self, primary: str) -> tuple[Cluster, dict[str, str]]:
        from django.conf import settings
        from django.db import connections

        aliases = [primary, *self.replicas()[primary]]
        pools = [connections[alias].postfork_pool() for alias in aliases]
        options = dict(getattr(settings, TOPOLOGY_SETTING, {}) or {})
        unknown = sorted(set(options) - set(CLUSTER_OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown {TOPOLOGY_SETTING} key(s): {', '.join(unknown)}; "
                f"known: {', '.join(CLUSTER_OPTIONS)}"
            )
        cluster = Cluster(pools[0], pools[1:], **options)
        names = {member.name: alias for member, alias in zip(cluster.members, aliases, strict=True)}
        self.clusters[primary] = (cluster, names)
        install(cluster)
        log.info("reads of %r routed over %s", primary, ", ".join(aliases[1:]))
        return cluster, names


topology = _Topology()


def _primary_of(alias: str) -> str:
    from django.conf import settings

    return (settings.DATABASES.get(alias, {}).get("TEST") or {}).get("MIRROR") or alias


class ReplicaRouter:
    """Reads to a fresh replica of the model's primary, writes to the primary."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        from django.db import connections

        primary = _write_alias(model, hints)
        found = topology.cluster_for(primary)
        if found is None or connections[primary].in_atomic_block:
            return None  # no replicas, or a transaction: it reads its own writes there
        cluster, names = found
        return names[cluster._route(write=False).name]

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        found = topology.cluster_for(_write_alias(model, hints))
        if found is not None:
            found[0].note_write()
        return None  # Django's default: the primary

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        if _primary_of(obj1._state.db or "default") == _primary_of(obj2._state.db or "default"):
            return True  # the same data, read from different members of one topology
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if _primary_of(db) != db else None  # replicas get schema by replication


def _write_alias(model: Any, hints: Mapping[str, Any]) -> str:
    instance = hints.get("instance")
    if instance is not None and instance._state.db:
        return _primary_of(instance._state.db)
    return "default"
