"""The ``postfork`` command (entry point ``postfork.cli:main``)."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
