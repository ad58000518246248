"""Stock Django connects inside a request where postfork's timing middleware cannot see them
(they are not postfork's pool): report each one as postfork's pool would, so the bench's
"connects on the request path" column counts them for the stock scenarios too."""

from __future__ import annotations

import time

from django.db.backends.mysql.base import DatabaseWrapper as StockDatabaseWrapper

from postfork.observe.timing import report_checkout


class DatabaseWrapper(StockDatabaseWrapper):  # type: ignore[misc]
    def connect(self) -> None:
        started = time.perf_counter()
        super().connect()  # the connection and Django's session set-up: what a request pays
        report_checkout(0.0, time.perf_counter() - started)
