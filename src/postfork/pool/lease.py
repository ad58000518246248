"""One checkout of one pooled connection (SQLAlchemy's ``_ConnectionFairy``): what a lease of
either pool is and knows. Entering and leaving it is I/O, in the shells: ``Lease`` (``with``)
in ``pool.py`` and ``AsyncLease`` (``async with``) in ``pool_async.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import PoolCore
    from .slot import Slot


class _NotDBAPI:
    """A DB-API connection's method looked up on a Lease: someone took the Lease for the
    connection. A descriptor per name, not ``__getattr__``: that hook would make every attribute
    read on a Lease a slow lookup (CPython stops specialising them), once per checkout."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        kind = (owner or type(instance)).__name__
        opener = "async with" if kind.startswith("Async") else "with"
        raise AttributeError(
            f"'{kind}' object has no attribute {self.name!r}: a {kind} is not a DB-API "
            f"connection; use '{opener} pool.connection() as conn:' (for SQLAlchemy: "
            "poolclass=postfork.sqlalchemy.PostforkPool, not creator=pool.connection)"
        )


class LeaseBase:
    """One checkout of one connection.

    Once entered it tells what this checkout cost: ``wait_seconds`` blocked on a full pool and
    ``connect_seconds`` spent opening a connection (0.0 when one was reused). When the pool has
    checkout or checkin listeners, ``held_seconds`` says how long the block held it.
    """

    __slots__ = (
        "_checked_out_at",
        "_invalid",
        "_pool",
        "_slot",
        "_timed_out",
        "_watch",
        "connect_seconds",
        "connection_id",
        "held_seconds",
        "wait_seconds",
    )

    def __init__(self, pool: PoolCore) -> None:
        self._pool = pool
        self._slot: Slot | None = None
        self._invalid = False
        self._timed_out = False
        self._checked_out_at = 0.0
        self._watch = 0  # the watchdog's token while a deadline watches this lease
        self.wait_seconds = 0.0
        self.connect_seconds = 0.0
        self.held_seconds = 0.0
        self.connection_id = 0

    # what DB-API code (SQLAlchemy's creator=, a handler) calls first on a connection
    cursor = _NotDBAPI()
    commit = _NotDBAPI()
    rollback = _NotDBAPI()
    close = _NotDBAPI()
    autocommit = _NotDBAPI()
    ping = _NotDBAPI()
    character_set_name = _NotDBAPI()
    get_server_info = _NotDBAPI()

    @property
    def paid_connect(self) -> bool:
        return self.connect_seconds > 0.0

    @property
    def info(self) -> dict[str, Any]:
        """The leased session's ``info`` dict (see ``Slot.info``), while the lease is held."""
        if self._slot is None:
            raise RuntimeError("a Lease has a session only while it is held")
        return self._slot.info

    @property
    def inherited(self) -> bool:
        """Held when this process was forked: the connection is its parent's (abandoned here,
        its fd on /dev/null); end the lease, never use it."""
        self._pool._ensure_process()
        return self._slot is not None and self._slot.generation != self._pool._generation

    def invalidate(self, *, timed_out: bool = False) -> None:
        """Discard this connection on exit instead of returning it (e.g. after a read timeout).
        ``timed_out=True``: the server stopped answering (a read timed out), so the pool treats
        it as silent (``note_silence``): its idle connections go too, and checkouts fail
        fast until a connect succeeds."""
        self._invalid = True
        self._timed_out = self._timed_out or timed_out

    def _usable_slot(self) -> Slot | None:
        """The held slot if its connection may be used (``is_alive`` goes on from here)."""
        slot = self._slot
        if slot is None or slot.conn is None or self.inherited:
            return None
        return slot if self._pool._driver.is_open(slot.conn) else None
