"""One access-log line per request, in logfmt or JSON, on ``logging.getLogger("postfork.access")``:
method, path, status, duration, the worker's pid and request number since its fork, and what the
request spent connecting, holding a connection and waiting for the pool."""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .timing import Request, RequestTiming

FORMATS = ("logfmt", "json", "off")
log = logging.getLogger("postfork.access")

_NEEDS_QUOTES = re.compile(r'[\s"=\\]|^$')


def render(
    format: str,
    request: Request,
    timing: RequestTiming,
    status: int,
    seconds: float,
    pid: int,
    number: int,
) -> str:
    method, path, query = request
    path = path or "/"
    if query:
        path = f"{path}?{query}"
    if format == "json":
        return json.dumps(
            {
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1e3, 3),
                "pid": pid,
                "request": number,
                "connect_ms": round(timing.connect * 1e3, 3),
                "db_ms": round(timing.db * 1e3, 3),
                "wait_ms": round(timing.wait * 1e3, 3),
            },
            separators=(",", ":"),
        )
    return (
        f"method={_logfmt(method)} path={_logfmt(path)} status={status} "
        f"duration_ms={seconds * 1e3:.3f} pid={pid} request={number} "
        f"connect_ms={timing.connect * 1e3:.3f} db_ms={timing.db * 1e3:.3f} "
        f"wait_ms={timing.wait * 1e3:.3f}"
    )


def _logfmt(text: str) -> str:
    """A logfmt value: bare when it can be, else quoted with JSON escapes (quotes, control
    characters: a client cannot forge a second field or a second line)."""
    return json.dumps(text) if _NEEDS_QUOTES.search(text) else text
