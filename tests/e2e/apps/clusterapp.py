"""A plain WSGI app on a primary and two replicas, adopting postfork's topology with one object
and one call: ``postfork.Cluster(...)`` and ``postfork.install(cluster)``. ``GET /notes`` reads
(an idempotent count, from a replica), ``POST /notes`` writes (on the primary); the database
being unreachable is a JSON 503, never a traceback.

The controls: ``CLUSTER=plain``, a plain pool per server, reads spread over the replicas by
hand (what an app does without a topology-aware pool); ``CLUSTER=primary``, one plain pool on
the primary for everything (an app that ignores its replicas)."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import postfork

PRIMARY = os.environ["DATABASE_URL"]
REPLICAS = os.environ["REPLICA_URLS"].split(",")
OPTIONS: dict[str, Any] = {
    "autocommit": True,
    "checkout_timeout": 1.0,
    "connect_timeout": 1.0,
    "max_size": 2,
}
MODE = os.environ.get("CLUSTER", "cluster")


def count(conn: Any) -> dict[str, int]:
    cursor = conn.cursor()
    cursor.execute("SELECT COUNT(*), @@port FROM postfork.notes")
    notes, port = cursor.fetchone()
    return {"notes": int(notes), "port": int(port)}


def insert(conn: Any) -> dict[str, int]:
    cursor = conn.cursor()
    cursor.execute("INSERT INTO postfork.notes (body) VALUES ('e2e')")
    cursor.execute("SELECT @@port")
    return {"id": int(cursor.lastrowid), "port": int(cursor.fetchone()[0])}


if MODE in ("plain", "primary"):
    pools = [postfork.Pool(url, **OPTIONS) for url in REPLICAS] if MODE == "plain" else []
    writer_pool = postfork.Pool(PRIMARY, **OPTIONS)
    for pool in (writer_pool, *pools):
        postfork.install(pool)
    pools = pools or [writer_pool]
    turn = itertools.count()

    def read() -> dict[str, int]:
        with pools[next(turn) % len(pools)].connection() as conn:
            return count(conn)

    def write() -> dict[str, int]:
        with writer_pool.connection() as conn:
            return insert(conn)
else:
    cluster = postfork.Cluster(
        PRIMARY, REPLICAS, check_interval=0.2, max_replica_lag=1.0, **OPTIONS
    )
    postfork.install(cluster)

    def read() -> dict[str, int]:
        return cluster.read(count)

    def write() -> dict[str, int]:
        with cluster.writer() as conn:
            return insert(conn)


ROUTES: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
    ("GET", "/notes"): read,
    ("POST", "/notes"): write,
    ("GET", "/healthz"): lambda: {"status": "alive"},
}


def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    handler = ROUTES.get((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
    if handler is None:
        status, body = "404 Not Found", {"error": "no such route"}
    else:
        try:
            status, body = "200 OK", {**handler(), "pid": os.getpid()}
        except Exception as exc:  # postfork's (no member left...), the driver's (connection lost)
            error = {"error": type(exc).__name__, "detail": str(exc), "pid": os.getpid()}
            status, body = "503 Service Unavailable", error
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Retry-After", "1")])
    return [payload]
