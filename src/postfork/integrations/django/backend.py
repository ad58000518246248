"""The ``postfork.django`` database backend: Django's MySQL backend whose connections come from
the worker's postfork pool and go back to it when Django would close them.

- ``get_new_connection`` checks one out (no connect on a request: the pool is warm);
- ``init_connection_state`` (``SET SESSION TRANSACTION ISOLATION LEVEL ...``) runs once per
  server session, not on every checkout;
- ``is_usable`` (health checks, ``CONN_HEALTH_CHECKS``) costs no round trip;
- ``_close`` gives the connection back (a transaction left open is rolled back without waiting);
- under ASGI a request's connections go back when it ends whatever ``CONN_MAX_AGE`` says
  (``pools.give_back_after_asgi_request``): every request runs in a context of its own, and a
  connection kept for the next request would be kept by nobody.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import OperationalError
from django.db.backends.mysql import base as mysql
from django.utils.functional import cached_property

from ...errors import DatabaseUnavailable, PoolError
from ...pool import Lease, Pool
from . import pools

log = logging.getLogger("postfork.django")


class DatabaseWrapper(mysql.DatabaseWrapper):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._postfork_lease: Lease | None = None
        self._postfork_checked_out = False  # connect() is setting up what it just checked out
        self._postfork_discard = False  # the next close is because the connection is unusable
        pools.register(self)

    def postfork_pool(self) -> Pool:
        """This alias's pool in this process (made on first use)."""
        params = self.get_connection_params()
        return pools.pool_for(self.alias, self.settings_dict, params)

    @cached_property  # type: ignore[untyped-decorator]
    def mysql_server_data(self) -> dict[str, Any]:
        """The server's facts (version, sql_mode...), asked once per process and database:
        Django asks once per connection object, and under ASGI each request has its own."""
        ask = mysql.DatabaseWrapper.mysql_server_data.func
        return pools.server_facts(self.alias, self.settings_dict, lambda: ask(self))

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        params.pop(pools.POOL_OPTION, None)  # the pool's options, not the driver's
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        pool = pools.pool_for(self.alias, self.settings_dict, conn_params)
        lease = pool.connection()
        try:
            connection = lease.__enter__()
        except (DatabaseUnavailable, PoolError) as exc:  # Django's error, postfork's message
            raise OperationalError(str(exc)) from exc
        self._postfork_lease, self._postfork_checked_out = lease, True
        if getattr(connection, "encoders", {}).get(bytes) is bytes:
            connection.encoders.pop(bytes)  # as Django's own backend does
        return connection

    def init_connection_state(self) -> None:
        lease, from_connect = self._postfork_lease, self._postfork_checked_out
        self._postfork_checked_out = False
        ready = (self.isolation_level,)
        if from_connect and lease is not None and lease.info.get(pools.SESSION_READY) == ready:
            return  # connect() on a server session that was set up when first handed out
        super().init_connection_state()
        if lease is not None:
            lease.info[pools.SESSION_READY] = ready

    def is_usable(self) -> bool:
        """Zero round trips: the socket has nothing to read unless the server closed it."""
        lease = self._postfork_lease
        return lease is not None and lease.is_alive()

    # Django's two decisions to close a connection it finds unusable, as Django makes them
    # (4.2 to 5.2), marking those closes: such a connection is discarded, never given back.

    def close_if_health_check_failed(self) -> None:
        if self.connection is None or not self.health_check_enabled or self.health_check_done:
            return
        if not self.is_usable():
            self._close_unusable()
        self.health_check_done = True

    def close_if_unusable_or_obsolete(self) -> None:
        if self.connection is None:
            return
        self.health_check_done = False
        if self.get_autocommit() != self.settings_dict["AUTOCOMMIT"]:
            self._close_unusable()  # the app did not restore autocommit: take no chances
            return
        if self.errors_occurred:
            if not self.is_usable():
                self._close_unusable()
                return
            self.errors_occurred = False
            self.health_check_done = True
        if self.close_at is not None and time.monotonic() >= self.close_at:
            self.close()  # CONN_MAX_AGE reached (0: every request): back to the pool

    def _close_unusable(self) -> None:
        self._postfork_discard = True
        try:
            self.close()
        finally:
            self._postfork_discard = False

    def _close(self) -> None:
        lease, self._postfork_lease = self._postfork_lease, None
        if lease is None:
            return None if self.connection is None else super()._close()
        if self._postfork_discard or self.in_atomic_block:
            lease.invalidate()  # unusable, or Django may still hold it (closed in a transaction)
        lease.__exit__(None, None, None)
        return None

    def forget_inherited(self) -> None:
        """After fork, in the child: a connection held across fork is the parent's session."""
        lease = self._postfork_lease
        if lease is None or not lease.inherited:
            return
        log.warning(
            "Django's %r connection was held when this process was forked; it stays with the "
            "parent (postfork.django in INSTALLED_APPS closes it in the master before fork)",
            self.alias,
        )
        self._postfork_lease = None
        lease.__exit__(None, None, None)  # releases the abandoned connection, sends nothing
        self.connection = None
        self.in_atomic_block = False
        self.closed_in_transaction = False
