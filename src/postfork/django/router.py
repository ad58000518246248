"""The router Django loads for ``DATABASE_ROUTERS = ["postfork.django.router.ReplicaRouter"]``."""

from ..integrations.django.router import ReplicaRouter

__all__ = ["ReplicaRouter"]
