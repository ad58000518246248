"""The summary is the same whether the driver parsed DATETIME values or left them as text
(the service keeps them as text: rows.py), including the fractional seconds of DATETIME(6)."""

from __future__ import annotations

import datetime as dt

from postfork_tools.service.rows import text_datetimes
from postfork_tools.service.summary import iso, summarize

ROWS = [
    (1250, "books", dt.datetime(2026, 10, 18, 21, 12, 56)),
    (990, "games", dt.datetime(2026, 11, 2, 8, 0, 1, 250000)),
    (4000, "books", dt.datetime(2026, 9, 30, 23, 59, 59)),
]


def as_text(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")  # MySQL's DATETIME(6) text


def test_text_and_parsed_datetimes_summarize_alike() -> None:
    text_rows = [(amount, category, as_text(created)) for amount, category, created in ROWS]
    parsed, text = summarize(7, ROWS), summarize(7, text_rows)
    assert parsed == text
    assert text["latest_order_at"] == "2026-11-02T08:00:01.250000"
    assert text["top_categories"][0] == {"category": "books", "spend": 52.5}
    assert iso("2026-10-18 21:12:56.000000") == "2026-10-18T21:12:56"  # as datetime prints it


def test_each_driver_gets_datetimes_as_text() -> None:
    from MySQLdb.constants import FIELD_TYPE

    conv = text_datetimes("mysqlclient")
    assert conv[FIELD_TYPE.DATETIME](b"2026-10-18 21:12:56") == "2026-10-18 21:12:56"
    assert conv[FIELD_TYPE.LONG] is not conv[FIELD_TYPE.DATETIME]  # the rest as the driver has it
    from pymysql.constants import FIELD_TYPE as PYMYSQL_FIELD_TYPE

    pymysql_conv = text_datetimes("pymysql")
    stamp = "2026-10-18 21:12:56"
    assert pymysql_conv[PYMYSQL_FIELD_TYPE.TIMESTAMP](stamp) == stamp
