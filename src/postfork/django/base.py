"""The database backend Django loads for ``"ENGINE": "postfork.django"``."""

from ..integrations.django.backend import DatabaseWrapper

__all__ = ["DatabaseWrapper"]
