"""Pool events: who hears what, with which arguments, and that nobody listening costs nothing."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from postfork import ConfigError, DatabaseUnavailable, DiscardReason, Pool, PoolTimeout
from postfork.pool import events, listen_all, remove_all

from .fakes import FakeDriver, FakeOperationalError

URL = "mysql://app:pw@db.example/shop"


def make_pool(driver: FakeDriver | None = None, **kwargs: Any) -> Pool:
    kwargs.setdefault("min_idle", 0)
    return Pool(URL, driver=driver or FakeDriver(), **kwargs)


def record(pool: Pool) -> list[tuple[Any, ...]]:
    heard: list[tuple[Any, ...]] = []
    pool.events.listen(
        "connect",
        lambda p, slot: heard.append(("connect", slot.connection_id, slot.connect_seconds > 0)),
    )
    pool.events.listen("checkout", lambda p, lease: heard.append(("checkout", lease.paid_connect)))
    pool.events.listen("checkin", lambda p, lz: heard.append(("checkin", lz.held_seconds > 0)))
    pool.events.listen(
        "discard", lambda p, slot, reason: heard.append(("discard", slot.connection_id, reason))
    )
    pool.events.listen("timeout", lambda p, waited: heard.append(("timeout", waited > 0)))
    pool.events.listen("connect_failed", lambda p, e: heard.append(("failed", type(e).__name__)))
    return heard


def test_a_lease_is_heard_from_connect_to_checkin() -> None:
    pool = make_pool()
    heard = record(pool)
    with pool.connection():
        pass
    with pool.connection():
        pass
    assert heard == [
        ("connect", 1, True),
        ("checkout", True),
        ("checkin", True),
        ("checkout", False),
        ("checkin", True),
    ]


def test_discards_timeouts_and_failed_connects_are_heard_with_their_reason() -> None:
    driver = FakeDriver()
    pool = make_pool(driver, max_size=1, checkout_timeout=0.05)
    heard = record(pool)
    with pool.connection() as conn:
        with pytest.raises(PoolTimeout), pool.connection():
            pass
        conn.server_kills()
    assert ("timeout", True) in heard
    driver.fail_next_connects = [FakeOperationalError(2003, "refused")]
    heard.clear()
    with pytest.raises(DatabaseUnavailable), pool.connection():
        pass
    assert heard == [("discard", 1, DiscardReason.STALE), ("failed", "DatabaseUnavailable")]


def test_a_fork_is_heard_as_discards_in_the_child() -> None:
    pool = make_pool(min_idle=2, max_size=2)
    pool.warm()
    heard = record(pool)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            pool.stats()  # any call makes the child drop what it inherited
            os.write(write_end, json.dumps([list(map(str, item)) for item in heard]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    child_heard = json.loads(os.read(read_end, 4096))
    fork = "DiscardReason.FORK"
    assert sorted(child_heard) == [["discard", "1", fork], ["discard", "2", fork]]
    assert heard == []  # the parent lost nothing


def test_listen_all_reaches_existing_and_future_pools_and_can_be_removed() -> None:
    seen: list[str] = []

    def listener(pool: Pool, lease: Any) -> None:
        seen.append(pool.url.host)

    before = Pool("mysql://u@before/x", driver=FakeDriver(), min_idle=0)
    listen_all("checkout", listener)
    try:
        after = Pool("mysql://u@after/x", driver=FakeDriver(), min_idle=0)
        for pool in (before, after):
            with pool.connection():
                pass
    finally:
        remove_all("checkout", listener)
    with before.connection():
        pass
    assert seen == ["before", "after"]


def test_a_failing_checkout_listener_still_returns_the_connection() -> None:
    pool = make_pool(max_size=1, checkout_timeout=0.2)

    def broken(pool: Pool, lease: Any) -> None:
        raise RuntimeError("listener bug")

    pool.events.listen("checkout", broken)
    with pytest.raises(RuntimeError, match="listener bug"), pool.connection():
        pass
    pool.events.remove("checkout", broken)
    with pool.connection() as conn:  # not leaked: the only connection is free again
        assert conn.ident == 1


def test_unknown_event_is_a_config_error_naming_the_events() -> None:
    with pytest.raises(ConfigError, match="checkout"):
        make_pool().events.listen("chekout", lambda *args: None)


def test_without_listeners_a_lease_does_no_event_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unused hooks cost nothing: not even a clock read for held_seconds (the time itself is
    measured by benchmarks/pool_overhead.py)."""
    # no process-wide listeners either (a timing middleware made by an earlier test adds some)
    monkeypatch.setattr(events, "_every_pool", {name: [] for name in events.EVENTS})
    pool = make_pool()
    assert not pool.events.checkout and not pool.events.checkin
    lease = pool.connection()
    with lease:
        pass
    assert lease.held_seconds == 0.0
