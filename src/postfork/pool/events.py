"""The pool's events: what timing, metrics, logging and the ORM integrations listen to.

Each event is a tuple of listeners on the pool's :class:`PoolEvents`; the pool tests it for
emptiness before doing anything for it (SQLAlchemy's ``if self.dispatch.checkout:``), so an
event nobody listens to costs one attribute load. Listeners added with :func:`listen_all`
hear every pool of the process, present and future (the timing middleware does not know the
app's pools). Listeners run outside the pool's lock and their errors propagate.

Events and their arguments:

- ``connect(pool, slot)``: a new connection is open and set up (``init_sql`` ran), before it
  can be handed out; ``slot.connection``, ``slot.connection_id``, ``slot.connect_seconds``,
  ``slot.info``. A listener that raises fails the connect (the connection is closed). On an
  ``AsyncPool`` a connect listener may return an awaitable: the pool awaits it (an ORM sets
  its session up there, with the connection's own I/O).
- ``connect_failed(pool, error)``: opening one failed (``error`` is postfork's, chained)
- ``checkout(pool, lease)``: a lease began; ``lease.wait_seconds``, ``lease.connect_seconds``
- ``checkin(pool, lease)``: a lease ended, its connection returned or discarded;
  ``lease.held_seconds``
- ``discard(pool, slot, reason)``: a connection left the pool (a ``DiscardReason``)
- ``timeout(pool, waited)``: a checkout gave up after ``checkout_timeout``
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError

EVENTS = ("connect", "connect_failed", "checkout", "checkin", "discard", "timeout")
Listener = Callable[..., None]

_every_pool: dict[str, list[Listener]] = {name: [] for name in EVENTS}
_dispatchers: weakref.WeakSet[PoolEvents] = weakref.WeakSet()


class PoolEvents:
    """One pool's listeners, each event a tuple (empty: nobody listens)."""

    __slots__ = ("__weakref__", "_own", "on_lease", *EVENTS)

    connect: tuple[Listener, ...]
    connect_failed: tuple[Listener, ...]
    checkout: tuple[Listener, ...]
    checkin: tuple[Listener, ...]
    discard: tuple[Listener, ...]
    timeout: tuple[Listener, ...]
    on_lease: bool  # anyone listening to checkout or checkin: the one test a lease makes

    def __init__(self) -> None:
        self._own: dict[str, list[Listener]] = {name: [] for name in EVENTS}
        self._refresh()
        _dispatchers.add(self)

    def listen(self, event: str, listener: Listener) -> None:
        """Call ``listener`` on ``event`` of this pool."""
        self._own[_known(event)].append(listener)
        self._refresh()

    def remove(self, event: str, listener: Listener) -> None:
        self._own[_known(event)].remove(listener)
        self._refresh()

    def _refresh(self) -> None:
        for name in EVENTS:
            setattr(self, name, (*_every_pool[name], *self._own[name]))
        self.on_lease = bool(self.checkout or self.checkin)

    def __repr__(self) -> str:
        counts = " ".join(f"{name}={len(getattr(self, name))}" for name in EVENTS)
        return f"<PoolEvents {counts}>"


def listen_all(event: str, listener: Listener) -> None:
    """Call ``listener`` on ``event`` of every pool in this process (existing and future)."""
    if listener not in _every_pool[_known(event)]:
        _every_pool[event].append(listener)
        _refresh_all()


def remove_all(event: str, listener: Listener) -> None:
    _every_pool[_known(event)].remove(listener)
    _refresh_all()


def _refresh_all() -> None:
    for dispatcher in list(_dispatchers):
        dispatcher._refresh()


def _known(event: str) -> str:
    if event not in EVENTS:
        raise ConfigError(f"unknown pool event {event!r}; events: {', '.join(EVENTS)}")
    return event


def fire(listeners: tuple[Listener, ...], *args: Any) -> None:
    for listener in listeners:
        listener(*args)


async def afire(listeners: tuple[Listener, ...], *args: Any) -> None:
    """``fire()`` for an asyncio pool: a listener's awaitable result is awaited."""
    for listener in listeners:
        result = listener(*args)
        if inspect.isawaitable(result):
            await result
