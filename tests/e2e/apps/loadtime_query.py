"""An app that queries the database while it loads (in the master, when preloaded), then
calls postfork.install(): the master must end up holding no server session."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from postfork import Pool, install

pool = Pool(os.environ["DATABASE_URL"], min_idle=1, max_size=1)
with pool.connection() as conn:  # e.g. loading feature flags at import time
    conn.cursor().execute("SELECT 1")
install(pool)


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    with pool.connection() as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT CONNECTION_ID()")
        connection_id = cursor.fetchone()[0]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [f'{{"pid": {os.getpid()}, "connection_id": {connection_id}}}'.encode()]
