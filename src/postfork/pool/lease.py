"""One checkout of one pooled connection (SQLAlchemy's ``_ConnectionFairy``)."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .deadline import WATCHDOG, current_deadline

if TYPE_CHECKING:
    from .pool import Pool
    from .slot import Slot


class _NotDBAPI:
    """A DB-API connection's method looked up on a Lease: someone took the Lease for the
    connection. A descriptor per name, not ``__getattr__``: that hook would make every attribute
    read on a Lease a slow lookup (CPython stops specialising them), once per checkout."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        raise AttributeError(
            f"'Lease' object has no attribute {self.name!r}: a Lease is not a DB-API connection;"
            " use 'with pool.connection() as conn:' (for SQLAlchemy: "
            "poolclass=postfork.sqlalchemy.PostforkPool, not creator=pool.connection)"
        )


class Lease:
    """One checkout of one connection; use it as a context manager.

    After ``__enter__`` it tells what this checkout cost: ``wait_seconds`` blocked on a full
    pool and ``connect_seconds`` spent opening a connection (0.0 when one was reused). When the
    pool has checkout or checkin listeners, ``held_seconds`` says how long the block held it.
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

    def __init__(self, pool: Pool) -> None:
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

    def is_alive(self) -> bool:
        """Whether the leased connection still works, without a round trip: open, and its
        socket has nothing to read (an ORM's health check; a pending ROLLBACK reply is read)."""
        slot = self._slot
        if slot is None or slot.conn is None or self.inherited:
            return False
        driver = self._pool._driver
        if not driver.is_open(slot.conn):
            return False
        if driver.reset_pending(slot.conn):
            try:
                driver.finish_reset(slot.conn)
            except Exception:
                return False
        return not slot.server_spoke()

    @property
    def inherited(self) -> bool:
        """Held when this process was forked: the connection is its parent's (abandoned here,
        its fd on /dev/null); end the lease, never use it."""
        self._pool._ensure_process()
        return self._slot is not None and self._slot.generation != self._pool._generation

    def invalidate(self, *, timed_out: bool = False) -> None:
        """Discard this connection on exit instead of returning it (e.g. after a read timeout).
        ``timed_out=True``: the server stopped answering (a read timed out), so the pool treats
        it as silent (``Pool.note_silence``): its idle connections go too, and checkouts fail
        fast until a connect succeeds."""
        self._invalid = True
        self._timed_out = self._timed_out or timed_out

    def __enter__(self) -> Any:
        if self._slot is not None:
            raise RuntimeError("a Lease can be entered only once at a time")
        pool = self._pool
        limit = current_deadline()
        if limit is None:
            self._slot, self.wait_seconds, self.connect_seconds = pool._checkout()
        else:  # within postfork.deadline(): wait and connect within it, cut off past it
            self._slot, self.wait_seconds, self.connect_seconds = pool._checkout(limit)
            self._watch = WATCHDOG.watch(limit, self._slot.fd)
        self.connection_id = self._slot.connection_id
        if pool.events.on_lease:  # unused hooks cost this test and nothing else
            self._checked_out_at = time.perf_counter()
            try:
                for listener in pool.events.checkout:  # fire(), inline: once per checkout
                    listener(pool, self)
            except BaseException as exc:
                self.__exit__(type(exc), exc, exc.__traceback__)
                raise
        return self._slot.conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        slot, self._slot = self._slot, None
        if slot is None:
            return
        pool = self._pool
        if self._watch:
            if not WATCHDOG.unwatch(self._watch):  # the deadline cut it off: socket shut down
                self._invalid = self._timed_out = True
            self._watch = 0
        listened = self._checked_out_at  # 0.0: nobody listened when it began
        if listened:
            self.held_seconds = time.perf_counter() - listened
            self._checked_out_at = 0.0
        if self._timed_out:
            self._end_timed_out(slot, exc)
        else:
            pool._checkin(slot, exc, self._invalid)
        if listened:
            for listener in pool.events.checkin:
                listener(pool, self)

    def _end_timed_out(self, slot: Slot, exc: BaseException | None) -> None:
        self._timed_out = False
        self._pool._checkin(slot, exc, True)
        self._pool.note_silence(drop_idle=True)
