"""The ``postfork.django`` database backend: Django's MySQL backend whose connections come from
the worker's postfork pool and go back to it when Django would close them.

- ``get_new_connection`` checks one out (no connect on a request: the pool is warm);
- ``init_connection_state`` (``SET SESSION TRANSACTION ISOLATION LEVEL ...``) runs once per
  server session, not on every checkout;
- ``is_usable`` (health checks, ``CONN_HEALTH_CHECKS``) costs no round trip;
- ``_close`` gives the connection back (a transaction left open is rolled back without waiting).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db.backends.mysql import base as mysql

from ...pool import Lease, Pool
from . import pools

log = logging.getLogger("postfork.django")


class DatabaseWrapper(mysql.DatabaseWrapper):  # type: ignore[misc]
    display_name = "MySQL/MariaDB on postfork"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._postfork_lease: Lease | None = None
        pools.register(self)

    def postfork_pool(self) -> Pool:
        """This alias's pool in this process (made on first use)."""
        params = self.get_connection_params()
        return pools.pool_for(self.alias, self.settings_dict, params)

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        params.pop(pools.POOL_OPTION, None)  # the pool's options, not the driver's
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        pool = pools.pool_for(self.alias, self.settings_dict, conn_params)
        lease = pool.connection()
        connection = lease.__enter__()
        self._postfork_lease = lease
        if getattr(connection, "encoders", {}).get(bytes) is bytes:
            connection.encoders.pop(bytes)  # as Django's own backend does
        return connection

    def init_connection_state(self) -> None:
        lease = self._postfork_lease
        ready = (self.isolation_level,)
        if lease is not None and lease.info.get(pools.SESSION_READY) == ready:
            return  # this server session was set up when it was first handed to Django
        super().init_connection_state()
        if lease is not None:
            lease.info[pools.SESSION_READY] = ready

    def is_usable(self) -> bool:
        """Zero round trips: the socket has nothing to read unless the server closed it."""
        lease = self._postfork_lease
        return lease is not None and lease.is_alive()

    def _close(self) -> None:
        lease, self._postfork_lease = self._postfork_lease, None
        if lease is None:
            return None if self.connection is None else super()._close()
        if self.in_atomic_block or (self.errors_occurred and not lease.is_alive()):
            lease.invalidate()  # Django may still hold it (closed in a transaction): discard
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
