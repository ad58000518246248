"""Which database a command runs against, in one place: ``--database-url``, else
``DATABASE_URL``, else whatever an installed plug-in offers (postfork-tools: the private
MariaDB that ``postfork db start`` left running, or a temporary one), else a clear error."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib.metadata import entry_points

from .. import environment
from ..errors import ConfigError
from ..url import DatabaseURL, parse_url

FALLBACK_GROUP = "postfork.database"  # an entry point: a context manager (temporary=...)


@contextlib.contextmanager
def selected_database(
    explicit: str | None = None, *, temporary: bool = True
) -> Iterator[tuple[DatabaseURL, str]]:
    """Yield ``(url, origin)``; a server a plug-in started for it is stopped on exit."""
    if explicit:
        yield parse_url(explicit), "--database-url"
        return
    from_env = environment.database_url()
    if from_env:
        yield parse_url(from_env), "DATABASE_URL"
        return
    fallbacks = list(entry_points(group=FALLBACK_GROUP))
    if not fallbacks:
        raise ConfigError(
            "no database: pass --database-url or set DATABASE_URL "
            "(postfork-tools can start a private MariaDB: pip install postfork-tools)"
        )
    with fallbacks[0].load()(temporary=temporary) as chosen:
        yield chosen
