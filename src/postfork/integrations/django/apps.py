"""``INSTALLED_APPS += ["postfork.django"]``: at start-up, every database on the
``postfork.django`` engine gets its pool installed, so each worker is warm (connected, its
session set up) before its first request, and its upkeep runs after each response."""

from __future__ import annotations

from django.apps import AppConfig

ENGINE = "postfork.django"


class PostforkConfig(AppConfig):  # type: ignore[misc]
    name = "postfork.django"
    label = "postfork_django"
    verbose_name = "postfork"

    def ready(self) -> None:
        from django.conf import settings

        from .pools import lifecycle
        from .router import topology

        databases = settings.DATABASES.items()
        lifecycle.install(tuple(alias for alias, db in databases if db.get("ENGINE") == ENGINE))
        topology.build_all()
