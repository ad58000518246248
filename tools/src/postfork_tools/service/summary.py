"""The service's processing step: turn an account's orders into its summary, in Python."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

TOP_CATEGORIES = 3


def money(cents: int | float) -> float:
    return round(cents / 100.0, 2)


def iso(value: dt.datetime | str) -> str:
    """ISO 8601 for a DATETIME, whether the driver parsed it or left it as text."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.isoformat()


def summarize(
    account_id: int, orders: Sequence[tuple[int, str, dt.datetime | str]]
) -> dict[str, Any]:
    """``orders`` are (amount_cents, category, created_at) rows of one account; created_at
    all datetimes or all text in MySQL's format (which orders the same way)."""
    if not orders:
        return {
            "account_id": account_id,
            "orders": 0,
            "total": 0.0,
            "average": None,
            "largest": None,
            "latest_order_at": None,
            "top_categories": [],
        }
    spend: dict[str, int] = defaultdict(int)
    total = largest = 0
    latest = orders[0][2]
    for amount, category, created_at in orders:  # comparisons, not max(): 2 calls less a row
        total += amount
        if amount > largest:
            largest = amount
        if created_at > latest:  # type: ignore[operator]  # all datetimes or all text
            latest = created_at
        spend[category] += amount
    top = sorted(spend.items(), key=lambda item: (-item[1], item[0]))[:TOP_CATEGORIES]
    return {
        "account_id": account_id,
        "orders": len(orders),
        "total": money(total),
        "average": money(total / len(orders)),
        "largest": money(largest),
        "latest_order_at": iso(latest),
        "top_categories": [{"category": name, "spend": money(cents)} for name, cents in top],
    }
