"""Request input rules: every bad input becomes a 400 with a message a client can act on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import parse_qs

MAX_ID = 2**63 - 1
DEFAULT_LIMIT, MAX_LIMIT = 50, 500


class HTTPError(Exception):
    """A response that is the client's to act on: status, message, extra headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def positive_id(text: str, what: str) -> int:
    """A decimal integer in 1..2**63-1, written without sign, spaces or leading zeros."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise HTTPError(400, f"{what} must be a positive integer, got {_shown(text)}")
    value = int(text)
    if value == 0 or text[0] == "0" or value > MAX_ID:
        raise HTTPError(400, f"{what} must be between 1 and {MAX_ID}, got {_shown(text)}")
    return value


def limit(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 4 or not 1 <= int(text) <= MAX_LIMIT:
        raise HTTPError(400, f"limit must be an integer from 1 to {MAX_LIMIT}, got {_shown(text)}")
    return int(text)


def query_parameters(
    query_string: str, parsers: Mapping[str, Callable[[str], int]]
) -> dict[str, int]:
    """Parse the query string strictly: known names only, each at most once."""
    try:
        raw = parse_qs(
            query_string,
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=len(parsers) + 1,
        )
    except ValueError:
        raise HTTPError(400, "too many query parameters") from None
    values: dict[str, int] = {}
    for name, items in raw.items():
        if name not in parsers:
            known = ", ".join(sorted(parsers)) or "none"
            raise HTTPError(400, f"unknown query parameter {_shown(name)}; known: {known}")
        if len(items) > 1:
            raise HTTPError(400, f"query parameter {name!r} given more than once")
        values[name] = parsers[name](items[0])
    return values


def _shown(text: str, limit: int = 40) -> str:
    """Echo client input safely: bounded and repr-quoted."""
    return repr(text if len(text) <= limit else text[:limit] + "...")
