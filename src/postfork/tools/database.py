"""Database selection, in one place: explicit URL, else DATABASE_URL, else the embedded server."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from .. import environment
from ..errors import ConfigError
from ..url import DatabaseURL, parse_url
from .embedded import EmbeddedMariaDB

log = logging.getLogger("postfork.database")


@contextlib.contextmanager
def selected_database(
    explicit: str | None = None, *, temporary: bool = True
) -> Iterator[tuple[DatabaseURL, str]]:
    """Yield ``(url, origin)``; a private server started here is stopped on exit.

    Order: ``explicit``, then ``DATABASE_URL``, then the server ``postfork db start`` left
    running, then (when ``temporary``) a temporary private ``mariadbd``.
    """
    if explicit:
        yield parse_url(explicit), "--database-url"
        return
    from_env = environment.database_url()
    if from_env:
        yield parse_url(from_env), "DATABASE_URL"
        return
    running = EmbeddedMariaDB.from_state()
    if running is not None:
        yield running.url, "embedded MariaDB (postfork db start)"
        return
    if not temporary:
        raise ConfigError(
            "no database: pass --database-url, set DATABASE_URL, or run: postfork db start"
        )
    with EmbeddedMariaDB() as server:
        yield server.url, "embedded MariaDB (temporary, stopped on exit)"
