"""How the service's rows come back from the driver: DATETIME values as text.

A summary reads ~70 rows and keeps one timestamp (the latest); the drivers turn every
DATETIME into a ``datetime`` in Python, ~5 us each with mysqlclient: measured 350 of the 740 us
a summary query took on a direct connection (benchmarks/request_anatomy.py). As text in
MySQL's fixed-width format, values order as the datetimes do, and only the one that is kept is
parsed (:func:`postfork_tools.service.summary.iso`).
"""

from __future__ import annotations

from typing import Any


def text_datetimes(driver: str) -> dict[Any, Any]:
    """The driver's ``conv`` mapping with DATETIME and TIMESTAMP left as ``str``."""
    if driver in ("pymysql", "aiomysql"):  # aiomysql decodes with PyMySQL's converters
        import pymysql.converters
        from pymysql.constants import FIELD_TYPE

        conversions = dict(pymysql.converters.conversions)
    elif driver == "asyncmy":
        import asyncmy.converters
        from asyncmy.constants import FIELD_TYPE

        conversions = dict(asyncmy.converters.conversions)
    else:
        import MySQLdb.converters
        from MySQLdb.constants import FIELD_TYPE

        conversions = dict(MySQLdb.converters.conversions)
    for field in (FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP):
        conversions[field] = _text
    return conversions


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
