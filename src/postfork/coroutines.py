"""One code path for the thread pool and the asyncio pool, where a path is a coroutine.

Code written once as a coroutine serves both pools when every call that may do I/O goes
through :func:`result` (it awaits what an asyncio pool or driver returns, and takes what a
thread pool's returns as it is): on an asyncio pool it is awaited, on a thread pool nothing in
it suspends, and :func:`run_to_end` runs it to its end without an event loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def result(value: T | Awaitable[T]) -> T:
    """``value``, awaited if the call that gave it was a coroutine's (an asyncio pool's)."""
    if inspect.isawaitable(value):
        return await value
    return value


def run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (one on a thread pool), without a loop:
    one ``send`` runs it to its end."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("a coroutine suspended on a thread pool's path: it needs no event loop")
