"""The processing step of the story: turn an account's orders into its summary, in Python."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

TOP_CATEGORIES = 3


def money(cents: int | float) -> float:
    return round(cents / 100.0, 2)


def summarize(account_id: int, orders: Sequence[tuple[int, str, dt.datetime]]) -> dict[str, Any]:
    """``orders`` are (amount_cents, category, created_at) rows of one account."""
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
    for amount, category, created_at in orders:
        total += amount
        largest = max(largest, amount)
        latest = max(latest, created_at)
        spend[category] += amount
    top = sorted(spend.items(), key=lambda item: (-item[1], item[0]))[:TOP_CATEGORIES]
    return {
        "account_id": account_id,
        "orders": len(orders),
        "total": money(total),
        "average": money(total / len(orders)),
        "largest": money(largest),
        "latest_order_at": latest.isoformat(),
        "top_categories": [{"category": name, "spend": money(cents)} for name, cents in top],
    }
