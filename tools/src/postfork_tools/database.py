"""The private MariaDB as the database commands fall back on: ``postfork.cli.database`` picks
``--database-url``, else ``DATABASE_URL``, else this (an entry point in ``postfork.database``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from postfork.errors import ConfigError
from postfork.url import DatabaseURL
from postfork_tools.embedded import EmbeddedMariaDB


@contextlib.contextmanager
def embedded_database(*, temporary: bool = True) -> Iterator[tuple[DatabaseURL, str]]:
    """Yield ``(url, origin)``: the server ``postfork db start`` left running, else (when
    ``temporary``) a temporary private ``mariadbd``, stopped on exit."""
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
