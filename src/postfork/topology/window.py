"""Read-your-writes windows, each owned by the request (or task) that wrote.

After a write, reads in the same unit of work go to the primary for a while: a replica may not
have the write yet. That unit is the request, never the thread: a sync worker's thread serves
one request after another, so a window kept per thread would send the next clients' reads to
the primary too. A window is a context variable, so each asyncio task (one per request under
uvicorn and hypercorn) and each of asgiref's and anyio's thread hand-offs sees its own; a thread
keeps its context from one request to the next, so the end of every request closes every
window (:func:`request_ended`, which ``postfork.after_response()`` calls for every server's
hook, and the ASGI middleware around each request).

The value is a mapping from an owner's key (one per :class:`~postfork.Cluster`) to the
``time.monotonic()`` of its latest write; a write sets a new mapping rather than changing the
old one, which a copied context may share.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from types import MappingProxyType

_NONE: Mapping[object, float] = MappingProxyType({})
_opened: contextvars.ContextVar[Mapping[object, float]] = contextvars.ContextVar(
    "postfork_write_windows", default=_NONE
)


def open_window(owner: object, at: float) -> None:
    """``owner`` wrote at ``at`` in this request: its reads here may need the primary."""
    _opened.set(MappingProxyType({**_opened.get(), owner: at}))


def opened_at(owner: object) -> float | None:
    """When ``owner``'s latest write in this request was, or None."""
    return _opened.get().get(owner)


def request_ended() -> None:
    """Close every window this context holds: the next request starts with none."""
    if _opened.get():
        _opened.set(_NONE)
