"""An app that queries the database while it loads (in the master, when preloaded), then
calls postfork.install() (unless LOADTIME_INSTALL=0): the master must end up holding no server
session either way (without install(), gunicorn's pre_fork hook is what closes it)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from postfork import Pool, install

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
pool = Pool(os.environ["DATABASE_URL"], min_idle=1, max_size=1)
with pool.connection() as conn:  # e.g. loading feature flags at import time
    conn.cursor().execute("SELECT 1")
if os.environ.get("LOADTIME_INSTALL", "1") == "1":
    install(pool)


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    with pool.connection() as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT CONNECTION_ID()")
        connection_id = cursor.fetchone()[0]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [f'{{"pid": {os.getpid()}, "connection_id": {connection_id}}}'.encode()]
