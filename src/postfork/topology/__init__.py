"""Topologies: a primary with replicas, a Galera cluster; routing, health and lag checked off
the request path. Public: :class:`Cluster` (also ``postfork.Cluster``)."""

from .cluster import Cluster
from .health import Health, Role, Verdict
from .lease import RoutedLease
from .member import Member

__all__ = ["Cluster", "Health", "Member", "Role", "RoutedLease", "Verdict"]
