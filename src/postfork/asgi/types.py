"""ASGI's callable shapes, as postfork's middlewares use them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..warmup import WARMUP_KEY as WARMUP_SCOPE_KEY  # the warm-up request's scope carries it

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["WARMUP_SCOPE_KEY", "ASGIApp", "Message", "Receive", "Scope", "Send"]
