"""ASGI's callable shapes, as postfork's middlewares use them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WARMUP_SCOPE_KEY = "postfork.warmup"  # set in the scope of the lifespan's warm-up request
