"""Servers behind real network partitions (tests/netpartition.py): a private mariadbd, or a
primary's replicas, in a network namespace of the test's own, reached over TCP through a veth
pair; the tests drop its packets with nftables. Skipped, with the reason, where the machine
cannot make namespaces (no root, no ``ip`` or ``nft``); ``make test-partition`` installs
nftables first."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from postfork import DatabaseURL
from postfork_tools.embedded import DATABASE, EmbeddedMariaDB
from postfork_tools.replication import EmbeddedReplicaSet, Network

from ..netpartition import Namespace, unavailable

USER = "postfork_net"  # reaches the servers over TCP from this side of the link
_subnets = itertools.count(os.getpid() % 200)


def tcp_url(host: str, port: int) -> DatabaseURL:
    return DatabaseURL(host=host, port=port, user=USER, database=DATABASE)


def allow_tcp_user(server: EmbeddedMariaDB) -> None:
    server.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'%'")
    server.execute(f"GRANT ALL ON *.* TO '{USER}'@'%'")


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    with Namespace(next(_subnets) % 250) as made:
        yield made


@pytest.fixture
def far_server(namespace: Namespace) -> Iterator[EmbeddedMariaDB]:
    """A private mariadbd inside ``namespace``, listening on its side of the link."""
    server = EmbeddedMariaDB(port=3306, bind_address=namespace.inside, wrapper=namespace.wrap)
    with server:
        allow_tcp_user(server)
        yield server


@pytest.fixture
def far_url(namespace: Namespace, far_server: EmbeddedMariaDB) -> DatabaseURL:
    return tcp_url(namespace.inside, 3306)


@pytest.fixture
def far_replicas(namespace: Namespace) -> Iterator[EmbeddedReplicaSet]:
    """A primary on this side (loopback and its end of the link), two replicas inside the
    namespace following it over the link; a drop by port cuts one off from its clients while
    its replication goes on."""
    network = Network(
        primary_bind=f"127.0.0.1,{namespace.outside}",
        primary_host=namespace.outside,
        replica_bind=namespace.inside,
        replica_wrapper=namespace.wrap,
    )
    with EmbeddedReplicaSet(2, network=network) as replica_set:
        allow_tcp_user(replica_set.primary)  # replicated: the replicas have the user too
        replica_set.wait_for_replicas()
        yield replica_set
