"""How the tools speak: every line goes through a ``Say`` the CLI gives them (``print``), so
the library itself never prints."""

from __future__ import annotations

from collections.abc import Callable

Say = Callable[[str], None]
