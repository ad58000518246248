"""The app Django loads for ``INSTALLED_APPS += ["postfork.django"]``."""

from ..integrations.django.apps import PostforkConfig

__all__ = ["PostforkConfig"]
