"""A WSGI response body with work to do once the server has sent it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator


class ClosingBody:
    """The application's body; ``on_close`` runs when the server calls ``close()`` (after the
    last byte went out), also when the body's own ``close()`` raises."""

    def __init__(self, body: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self._body, self._on_close = body, on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()
