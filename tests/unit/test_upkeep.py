"""Upkeep off the request path without the app writing any: the after-response hook and the
per-worker timer that sleeps until the next connection enters its refresh window."""

from __future__ import annotations

import sys
import time
import types

import pytest

from postfork import Pool
from postfork.servers import uwsgi as uwsgi_server
from postfork.upkeep import Upkeep

from .fakes import FakeClock, FakeDriver


def make_pool(driver: FakeDriver, **kwargs: object) -> Pool:
    return Pool("mysql://u@db/x", driver=driver, lifetime_jitter=0, **kwargs)  # type: ignore[arg-type]


def test_maintenance_is_due_when_the_first_idle_connection_enters_its_last_tenth() -> None:
    clock = FakeClock()
    pool = make_pool(FakeDriver(wait_timeout=100.0), min_idle=1, clock=clock)  # lifetime 80 s
    assert pool.maintenance_due_in() == 0.0  # short of min_idle: now
    pool.warm()
    assert pool.maintenance_due_in() == pytest.approx(72.0)  # 80 s minus its last 10%
    clock.advance(73)
    assert pool.maintenance_due_in() == 0.0
    pool.enter_master_mode()
    assert pool.maintenance_due_in() is None  # a master keeps nothing: nothing to maintain


def test_the_timer_replaces_a_connection_before_its_lifetime_ends() -> None:
    driver = FakeDriver(wait_timeout=1.0)  # lifetime 0.8 s, replaced in its last 0.08 s
    pool = make_pool(driver, min_idle=1)
    pool.warm()
    upkeep = Upkeep()
    upkeep.add(pool)
    upkeep._timer_started._pid = 0  # as in a new worker
    upkeep.start_timer()
    deadline = time.monotonic() + 5
    while len(driver.opened) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(driver.opened) >= 3  # replaced twice in about 1.5 s, no request involved
    assert pool.stats()["discards"]["lifetime"] >= 2 and pool.stats()["idle"] == 1
    lease = pool.connection()
    with lease:
        assert not lease.paid_connect
    pool.close()


def test_after_response_maintains_every_installed_pool_and_never_raises() -> None:
    clock = FakeClock()
    driver = FakeDriver(wait_timeout=100.0)
    pool = make_pool(driver, min_idle=1, clock=clock)
    pool.warm()
    clock.advance(75)  # in the refresh window
    broken = make_pool(FakeDriver(), min_idle=1)
    broken._driver.fail_next_connects = [RuntimeError("database down")]  # type: ignore[attr-defined]
    upkeep = Upkeep()
    upkeep.add(broken)
    upkeep.add(pool)
    upkeep.after_response()
    assert driver.opened[0].closed and len(driver.opened) == 2


def test_the_uwsgi_after_request_hook_chains_what_was_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    module = types.SimpleNamespace(after_req_hook=lambda: calls.append("theirs"))
    monkeypatch.setitem(sys.modules, "uwsgi", module)
    assert uwsgi_server.chain_after_request(lambda: calls.append("ours"))
    module.after_req_hook()
    assert calls == ["theirs", "ours"]
    monkeypatch.delitem(sys.modules, "uwsgi")
    assert not uwsgi_server.chain_after_request(lambda: None)  # outside uWSGI: nothing to hook


def test_periodic_tasks_share_the_timer_thread_and_survive_their_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging
    import threading

    caplog.set_level(logging.WARNING, logger="postfork.upkeep")
    upkeep = Upkeep()
    runs: list[str] = []

    def sweep() -> None:
        runs.append(threading.current_thread().name)
        if runs.count("postfork-upkeep") == 2:
            raise OSError("disk full")

    before = threading.active_count()
    upkeep.every("sweep", lambda: 0.06, sweep)
    upkeep.every("other", lambda: 0.06, lambda: runs.append("other"))
    deadline = time.monotonic() + 5.0
    while runs.count("postfork-upkeep") < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert runs.count("postfork-upkeep") >= 4  # ran again after its failure
    assert "other" in runs
    assert threading.active_count() == before + 1  # one thread for all of it
    assert "periodic task sweep failed: OSError('disk full')" in caplog.text
