"""The one place that reads postfork's environment variables.

Precedence everywhere: an explicit argument, then the environment, then a built-in default.
"""

from __future__ import annotations

import os
from pathlib import Path

DATABASE_URL_VAR = "DATABASE_URL"
STATE_DIR_VAR = "POSTFORK_STATE_DIR"


def database_url_from_env() -> str | None:
    """``DATABASE_URL`` when set and not blank."""
    value = os.environ.get(DATABASE_URL_VAR, "").strip()
    return value or None


def state_dir() -> Path:
    """Where the embedded MariaDB records what it started (``POSTFORK_STATE_DIR`` or XDG cache)."""
    explicit = os.environ.get(STATE_DIR_VAR, "").strip()
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(cache) / "postfork"
