"""Pool behaviour without a server: fake driver (real socket pairs), injected clock and rng."""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from contextlib import ExitStack
from typing import Any

import pytest

from postfork import DatabaseUnavailable, Pool, PoolClosed, PoolTimeout
from postfork.errors import ConfigError
from postfork.pool.lifetime import SERVER_TIMEOUT_SHARE

from .fakes import FakeClock, FakeDriver, FakeOperationalError

URL = "mysql://app:topsecret-pw@db.example:3306/shop"


def make_pool(driver: FakeDriver | None = None, **kwargs: object) -> Pool:
    kwargs.setdefault("min_idle", 0)
    return Pool(URL, driver=driver or FakeDriver(), **kwargs)  # type: ignore[arg-type]


def lease_ident(pool: Pool) -> int:
    with pool.connection() as conn:
        return int(conn.ident)


# -- ordering, limits, timeouts --------------------------------------------------------------


def test_idle_connections_are_reused_last_in_first_out() -> None:
    pool = make_pool(max_size=3)
    a, b, c = pool.connection(), pool.connection(), pool.connection()
    conns = [lease.__enter__() for lease in (a, b, c)]
    for lease in (a, b, c):  # returned in order 1, 2, 3
        lease.__exit__(None, None, None)
    assert [lease_ident(pool) for _ in range(3)] == [3, 3, 3]
    assert [conn.ident for conn in conns] == [1, 2, 3]


def test_no_more_than_max_size_connections_and_timeout_names_the_limit() -> None:
    pool = make_pool(max_size=2, checkout_timeout=0.05)
    with pool.connection(), pool.connection():
        started = time.monotonic()
        with pytest.raises(PoolTimeout) as info, pool.connection():
            pass
        assert time.monotonic() - started < 2.0  # bounded by checkout_timeout, never a hang
    message = str(info.value)
    assert "max_size=2" in message and "checkout_timeout=0.05s" in message and "waited" in message
    assert info.value.pool is pool
    stats = pool.stats()
    assert (stats["timeouts"], stats["waits"], stats["connects"]) == (1, 1, 2)


def test_a_waiting_checkout_gets_the_connection_returned_by_another_thread() -> None:
    pool = make_pool(max_size=1, checkout_timeout=5)
    lease = pool.connection()
    lease.__enter__()
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(lease_ident(pool)))
    waiter.start()
    time.sleep(0.05)
    lease.__exit__(None, None, None)
    waiter.join(5)
    assert got == [1]
    stats = pool.stats()
    assert stats["waits"] == 1 and stats["wait_seconds"] > 0 and stats["connects"] == 1


def test_concurrent_threads_never_exceed_max_size_or_share_a_connection() -> None:
    driver = FakeDriver()
    pool = make_pool(driver, max_size=3, checkout_timeout=10)
    in_use: set[int] = set()
    peak = [0]
    errors: list[BaseException] = []
    guard = threading.Lock()

    def worker() -> None:
        try:
            for _ in range(200):
                with pool.connection() as conn:
                    with guard:
                        assert conn.ident not in in_use, "connection leased twice"
                        in_use.add(conn.ident)
                        peak[0] = max(peak[0], len(in_use))
                    time.sleep(0)
                    with guard:
                        in_use.discard(conn.ident)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert peak[0] <= 3 and len(driver.opened) <= 3
    assert pool.stats()["checkouts"] == 1600


# -- warm, connect failures -------------------------------------------------------------------


def test_warm_opens_connections_up_to_min_idle_and_no_further() -> None:
    driver = FakeDriver()
    pool = make_pool(driver, min_idle=2, max_size=4, init_sql=["SET time_zone = '+00:00'"])
    assert pool.warm() == 2
    assert pool.warm() == 0
    assert pool.stats()["idle"] == 2 and len(driver.opened) == 2
    assert driver.init_sql_seen == [("SET time_zone = '+00:00'",)] * 2
    lease = pool.connection()
    lease.__enter__()
    assert not lease.paid_connect and lease.connect_seconds == 0.0
    lease.__exit__(None, None, None)


def test_a_checkout_that_opens_a_connection_says_so() -> None:
    pool = make_pool()
    lease = pool.connection()
    with lease:
        pass
    assert lease.paid_connect and lease.connect_seconds > 0
    assert lease.connection_id == 1


def test_connect_failure_raises_database_unavailable_and_frees_the_capacity() -> None:
    driver = FakeDriver()
    driver.fail_next_connects = [
        FakeOperationalError(2003, "Can't connect to server on 'db' (111)")
    ]
    pool = make_pool(driver, max_size=1)
    with pytest.raises(DatabaseUnavailable) as info, pool.connection():
        pass
    assert info.value.code == 2003
    assert "db.example:3306" in str(info.value) and "connection refused" in str(info.value)
    assert "topsecret-pw" not in str(info.value)
    assert lease_ident(pool) == 1  # the failed attempt did not keep a slot
    assert pool.stats()["connect_errors"] == 1


def test_warm_failure_releases_every_reserved_slot() -> None:
    driver = FakeDriver()
    driver.fail_next_connects = [FakeOperationalError(1045, "Access denied for user 'app'")]
    pool = make_pool(driver, min_idle=3, max_size=3)
    with pytest.raises(DatabaseUnavailable, match="access denied"):
        pool.warm()
    stats = pool.stats()
    assert (stats["idle"], stats["in_use"], stats["connecting"]) == (0, 0, 0)
    assert pool.warm() == 3


# -- return: rollback, errors, invalidation ---------------------------------------------------


def test_open_transaction_is_rolled_back_on_return_and_none_otherwise() -> None:
    pool = make_pool()
    with pool.connection() as conn:
        conn.in_transaction = True
    assert conn.rollbacks == 1
    with pool.connection() as same:
        assert same is conn
    assert conn.rollbacks == 1  # no transaction open: no rollback, no round trip


def test_connection_level_error_discards_the_connection() -> None:
    pool = make_pool()
    with pytest.raises(FakeOperationalError), pool.connection() as conn:
        raise FakeOperationalError(2013, "Lost connection to server during query")
    assert conn.closed
    assert pool.stats()["discards"]["error"] == 1
    assert lease_ident(pool) == 2


def test_other_exceptions_roll_back_and_keep_the_connection() -> None:
    pool = make_pool()
    with pytest.raises(ValueError), pool.connection() as conn:
        raise ValueError("application bug")
    assert conn.rollbacks == 1 and not conn.closed
    assert lease_ident(pool) == 1


def test_interrupt_mid_lease_discards_the_connection() -> None:
    pool = make_pool()
    with pytest.raises(KeyboardInterrupt), pool.connection() as conn:
        raise KeyboardInterrupt
    assert conn.closed and pool.stats()["discards"]["error"] == 1


def test_failed_rollback_discards_the_connection() -> None:
    pool = make_pool()
    with pool.connection() as conn:
        conn.in_transaction, conn.fail_rollback = True, True
    assert conn.closed and pool.stats()["discards"]["error"] == 1


def test_invalidated_lease_is_discarded() -> None:
    pool = make_pool()
    lease = pool.connection()
    with lease as conn:
        lease.invalidate()
    assert conn.closed and pool.stats()["discards"]["error"] == 1


# -- liveness and lifetime --------------------------------------------------------------------


def test_idle_connection_closed_by_the_server_is_skipped_as_stale() -> None:
    pool = make_pool(max_size=2)
    first, second = pool.connection(), pool.connection()
    conn1, conn2 = first.__enter__(), second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    conn2.server_kills()  # conn2 is on top of the LIFO stack
    assert lease_ident(pool) == 1
    assert conn2.closed and pool.stats()["discards"]["stale"] == 1
    conn1.server_kills()
    assert lease_ident(pool) == 3  # every idle one was dead: a new connection
    assert pool.stats()["discards"]["stale"] == 2


def test_lifetime_is_below_the_server_wait_timeout_with_per_connection_jitter() -> None:
    clock = FakeClock()
    driver = FakeDriver(wait_timeout=100.0)
    pool = make_pool(driver, max_size=50, min_idle=50, clock=clock, rng=random.Random(7))
    pool.warm()
    lifetimes = sorted(slot.expires - slot.created for slot in pool._idle)
    cap = 100.0 * SERVER_TIMEOUT_SHARE
    assert all(0.9 * cap <= life <= cap for life in lifetimes)
    assert len(set(lifetimes)) == 50  # no two connections expire together
    assert lifetimes[-1] - lifetimes[0] > 0.05 * cap


def test_the_servers_wait_timeout_is_read_once_a_minute_not_on_every_connect() -> None:
    """Every session of a pool gets the same wait_timeout; reading it on each connect was one
    statement more per new session than a stock driver sends."""
    clock = FakeClock()
    driver = FakeDriver(wait_timeout=100.0)
    reads: list[float] = []
    read = driver.session_wait_timeout
    driver.session_wait_timeout = lambda conn: reads.append(1) or read(conn)  # type: ignore[method-assign]
    pool = make_pool(driver, max_size=6, min_idle=5, clock=clock, lifetime_jitter=0)
    pool.warm()
    assert len(reads) == 1 and all(s.expires - s.created == 80.0 for s in pool._idle)
    clock.advance(61)
    driver.wait_timeout = 50.0  # changed on the server meanwhile: the next connect reads it
    with ExitStack() as stack:
        for _ in range(6):  # the sixth connects
            stack.enter_context(pool.connection())
        newest = max(pool._busy, key=lambda slot: slot.created)
        assert len(reads) == 2 and newest.expires - newest.created == 40.0


def test_max_lifetime_caps_the_lifetime_below_a_generous_server() -> None:
    clock = FakeClock()
    pool = make_pool(max_lifetime=60, lifetime_jitter=0, clock=clock)
    with pool.connection():
        pass
    (slot,) = pool._idle
    assert slot.expires - slot.created == 60


def test_expired_idle_connection_is_retired_at_checkout() -> None:
    clock = FakeClock()
    driver = FakeDriver(wait_timeout=10.0)
    pool = make_pool(driver, clock=clock, lifetime_jitter=0)
    assert lease_ident(pool) == 1
    clock.advance(7.9)
    assert lease_ident(pool) == 1
    clock.advance(0.2)  # 8.1 s > 80% of wait_timeout
    assert lease_ident(pool) == 2
    assert driver.opened[0].closed and pool.stats()["discards"]["lifetime"] == 1


def test_a_leased_connection_is_never_retired_during_its_lease() -> None:
    clock = FakeClock()
    driver = FakeDriver(wait_timeout=10.0)
    pool = make_pool(driver, clock=clock, lifetime_jitter=0)
    with pool.connection() as conn:
        clock.advance(60)
        pool.maintain()
        assert not conn.closed
    assert conn.closed and pool.stats()["discards"]["lifetime"] == 1


def test_maintain_replaces_connections_near_their_end_off_the_request_path() -> None:
    clock = FakeClock()
    driver = FakeDriver(wait_timeout=100.0)
    pool = make_pool(driver, min_idle=1, clock=clock, lifetime_jitter=0)
    pool.warm()
    clock.advance(75)  # lifetime 80 s; maintain refreshes in the last 10%
    pool.maintain()
    assert driver.opened[0].closed and len(driver.opened) == 2
    lease = pool.connection()
    with lease:
        pass
    assert not lease.paid_connect


def test_leak_warning_names_the_held_time(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    pool = make_pool(clock=clock, leak_timeout=30)
    with caplog.at_level(logging.WARNING, logger="postfork.pool"), pool.connection():
        clock.advance(31)
        pool.maintain()
        pool.maintain()
    warnings = [r for r in caplog.records if "leak_timeout=30s" in r.getMessage()]
    assert len(warnings) == 1


# -- close, stats, repr, configuration --------------------------------------------------------


def test_close_closes_idle_now_and_leased_on_return() -> None:
    pool = make_pool(max_size=2)
    with pool.connection():
        pass
    lease = pool.connection()
    with lease:
        pool.close()
        assert pool.stats()["idle"] == 0
    with pytest.raises(PoolClosed), pool.connection():
        pass
    assert pool.stats()["discards"]["closed"] == 1
    assert pool.stats()["in_use"] == 0


def test_stats_repr_and_errors_never_show_the_password() -> None:
    pool = make_pool()
    with pool.connection():
        stats = pool.stats()
    for key in ("pid", "idle", "in_use", "connects", "connect_seconds", "checkouts", "waits"):
        assert key in stats
    assert set(stats["discards"]) >= {"stale", "lifetime", "error", "fork"}
    assert stats["in_use"] == 1 and stats["pid"] == os.getpid()
    text = repr(pool) + json.dumps(pool.stats())
    assert "topsecret-pw" not in text
    assert "idle=1 in_use=0" in repr(pool)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_size": 0},
        {"min_idle": 5, "max_size": 4},
        {"checkout_timeout": 0},
        {"connect_timeout": -1},
        {"lifetime_jitter": 1.5},
        {"init_sql": [""]},
        {"max_lifetime": float("inf")},
    ],
)
def test_invalid_settings_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        make_pool(**kwargs)


# -- fork -------------------------------------------------------------------------------------


def test_child_abandons_inherited_connections_without_closing_the_parents_sockets() -> None:
    driver = FakeDriver()
    pool = make_pool(driver, min_idle=3, max_size=3)
    pool.warm()  # inherited by the child: two idle connections and one leased
    leased = pool.connection()
    leased_conn = leased.__enter__()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report what it sees, never return into pytest
        try:
            with pool.connection() as conn:
                fresh = conn.ident
            leased.__exit__(None, None, None)  # a lease inherited across fork ends in the child
            report = {
                "stats": pool.stats(),
                "fresh": fresh,
                "closed_only_on_devnull": [c.closed_on_devnull for c in driver.opened[:3]],
            }
            os.write(write_end, json.dumps(report).encode())
        except BaseException as exc:  # surface the child's failure in the parent's assertion
            os.write(write_end, json.dumps({"child_error": repr(exc)}).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    report = json.loads(os.read(read_end, 65536))
    assert "child_error" not in report, report
    assert report["stats"]["discards"]["fork"] == 3
    assert report["stats"]["connects"] == 1 and report["fresh"] == 4
    # every inherited connection was closed in the child only after its fd pointed at /dev/null
    assert report["closed_only_on_devnull"] == [True, True, True]
    # the parent's connections are untouched: same sockets, still connected, still pooled
    assert not any(c.closed for c in driver.opened[:3])
    for conn in driver.opened[:3]:
        conn.server.sendall(b"x")
        assert conn.client.recv(1) == b"x"
    leased.__exit__(None, None, None)
    assert leased_conn.rollbacks == 0 and pool.stats()["idle"] == 3


def test_exit_hook_never_waits_for_a_lock_its_own_process_holds() -> None:
    """uWSGI runs atexit hooks inside the signal handler of a worker it stops; the signal may
    land while this very thread holds the pool's lock. Closing must not wait for it."""
    driver = FakeDriver()
    pool = make_pool(driver, min_idle=1, max_size=2)
    pool.warm()
    finished = threading.Event()
    with pool._lock:  # the interrupted request path
        worker = threading.Thread(target=lambda: (pool._close_at_exit(), finished.set()))
        worker.start()
        worker.join(2.0)
        assert finished.is_set(), "the exit hook blocked on the pool's lock"
    pool._close_at_exit()  # lock free again: now it closes
    assert pool.closed and pool.stats()["idle"] == 0


def test_an_orderly_exit_waits_for_the_upkeeps_moment_under_the_lock() -> None:
    """A recycled worker exits between requests: the upkeep thread may hold the pool's lock
    for a moment right then. Skipping the close left the connection for the server to count
    aborted (seen under load in tests/e2e/test_respawn.py); an orderly exit waits for it."""
    driver = FakeDriver()
    pool = make_pool(driver, min_idle=1, max_size=2)
    pool.warm()
    held = threading.Event()

    def upkeep_moment() -> None:
        with pool._lock:
            held.set()
            time.sleep(0.2)

    upkeep = threading.Thread(target=upkeep_moment)
    upkeep.start()
    held.wait(2.0)
    pool._close_at_exit()  # a stop signal's hook: busy, so it leaves the connection open
    assert not pool.closed and driver.opened[0].closed is False
    pool._close_at_exit(wait=2.0)  # orderly: waits out the moment, then closes
    upkeep.join()
    assert pool.closed and pool.stats()["idle"] == 0 and driver.opened[0].closed


# -- the rollback on return is sent, its reply read at the next checkout ---------------------


def test_a_returned_transaction_is_rolled_back_without_waiting_and_settled_at_checkout() -> None:
    pool = make_pool()
    with pool.connection() as conn:
        conn.in_transaction = True
    assert conn.rollbacks == 1 and conn._postfork_reset_pending  # sent, reply not read
    with pool.connection() as same:  # the reply makes the socket readable: not "stale"
        assert same is conn and not conn._postfork_reset_pending and not conn.in_transaction
    assert conn.rollbacks == 1 and pool.stats()["discards"]["stale"] == 0


def test_closing_reads_a_rollback_reply_still_due_before_the_socket_closes() -> None:
    """Seen under hypercorn recycling on a loaded machine: the server wrote the ROLLBACK's OK
    after the worker had closed the socket ('Could not write packet ... errno 32') and counted
    the client as aborted. The reply is read first; the socket then closes with nothing due."""
    pool = make_pool()
    with pool.connection() as conn:
        conn.in_transaction = True
    assert conn._postfork_reset_pending
    pool.close()
    assert conn.closed and not conn._postfork_reset_pending


def test_closing_waits_for_a_silent_servers_rollback_reply_no_longer_than_close_settle() -> None:
    from postfork.pool.pool import CLOSE_SETTLE

    pool = make_pool()
    with pool.connection() as conn:
        conn.silent = True
        conn.in_transaction = True
    started = time.monotonic()
    pool.close()
    assert conn.closed and time.monotonic() - started < CLOSE_SETTLE * 2


def test_an_app_rollback_in_flight_is_not_sent_twice_on_return() -> None:
    driver = FakeDriver()
    pool = make_pool(driver)
    with pool.connection() as conn:
        conn.in_transaction = True
        driver.rollback(conn)  # e.g. SQLAlchemy rolls back as it closes its Connection
    assert conn.rollbacks == 1


def test_a_connection_whose_rollback_reply_says_dead_is_discarded_at_checkout() -> None:
    pool = make_pool(max_size=2)
    first, second = pool.connection(), pool.connection()
    first.__enter__()
    conn2 = second.__enter__()
    first.__exit__(None, None, None)
    conn2.in_transaction = True
    conn2.server_kills()  # the server goes away before the ROLLBACK arrives
    second.__exit__(None, None, None)  # sent into the void; conn2 is on top of the stack
    assert lease_ident(pool) == 1  # conn2's reply was EOF: discarded, the next one served
    stats = pool.stats()
    assert conn2.closed and stats["discards"]["stale"] == 1
    assert stats["checkouts"] == 3  # the failed settle is not counted as a checkout


def test_a_rollback_reply_that_never_comes_costs_a_checkout_its_timeout_not_forever() -> None:
    pool = make_pool(max_size=1, checkout_timeout=0.2)
    with pool.connection() as conn:
        conn.in_transaction = True
        conn.silent = True  # the server goes silent: the ROLLBACK's reply never arrives
    started = time.monotonic()
    with pool.connection() as fresh:  # the silent one is discarded, a new one opened
        assert fresh is not conn
    assert time.monotonic() - started < 1.0
    assert pool.stats()["discards"]["stale"] == 1 and conn.closed


# -- per-session info and the connect listeners -----------------------------------------------


def test_session_info_lives_as_long_as_the_server_session() -> None:
    pool = make_pool(max_size=1)
    lease = pool.connection()
    with lease:
        lease.info["prepared"] = True
    again = pool.connection()
    with again as conn:
        assert again.info == {"prepared": True}
        conn.server_kills()
    fresh = pool.connection()
    with fresh:
        assert fresh.info == {}  # a new server session starts empty
    with pytest.raises(RuntimeError, match="only while it is held"):
        _ = fresh.info


def test_a_failing_connect_listener_closes_the_connection_and_frees_its_place() -> None:
    driver = FakeDriver()
    pool = make_pool(driver, max_size=1)

    def refuse(pool: Pool, slot: object) -> None:
        raise RuntimeError("session set-up failed")

    pool.events.listen("connect", refuse)
    with pytest.raises(RuntimeError, match="session set-up failed"), pool.connection():
        pass
    assert driver.opened[0].closed and pool.stats()["connect_errors"] == 1
    pool.events.remove("connect", refuse)
    assert lease_ident(pool) == 2  # the place was freed


def test_warm_waits_for_connects_another_thread_has_in_flight() -> None:
    """The upkeep timer may start warming a pool at the moment install() does: install() must
    still return with the pool warm, not with both connects in flight in the timer thread."""
    release = threading.Event()

    class SlowDriver(FakeDriver):
        def connect(self, url: Any, **kwargs: Any) -> Any:
            release.wait(5)
            return super().connect(url, **kwargs)

    pool = make_pool(SlowDriver(), min_idle=2, max_size=2)
    other = threading.Thread(target=pool.warm)
    other.start()
    while pool.stats()["connecting"] < 2:  # the other thread reserved both places
        time.sleep(0.001)
    finished = threading.Event()
    mine = threading.Thread(target=lambda: (pool.warm(), finished.set()))
    mine.start()
    assert not finished.wait(0.2)  # waits for the connects in flight instead of returning
    release.set()
    assert finished.wait(5)
    assert pool.stats()["idle"] == 2
    other.join(5)
    mine.join(5)


def test_two_threads_warming_at_once_open_min_idle_connections_not_twice_that() -> None:
    release = threading.Event()

    class SlowDriver(FakeDriver):
        def connect(self, url: Any, **kwargs: Any) -> Any:
            release.wait(5)
            return super().connect(url, **kwargs)

    driver = SlowDriver()
    pool = make_pool(driver, min_idle=1, max_size=3)
    threads = [threading.Thread(target=pool.warm) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(driver.opened) == 1 and pool.stats()["idle"] == 1


def test_warm_connects_itself_when_the_connect_it_waited_for_failed() -> None:
    """install() must not report a pool warm because the upkeep timer's connect, which it
    waited for, failed."""
    release = threading.Event()

    class FirstConnectFails(FakeDriver):
        def connect(self, url: Any, **kwargs: Any) -> Any:
            if not release.is_set():
                release.wait(5)
                raise FakeOperationalError(2003, "refused")
            return super().connect(url, **kwargs)

    pool = make_pool(FirstConnectFails(), min_idle=1, max_size=2)
    failed: list[BaseException] = []
    other = threading.Thread(target=lambda: _warm_into(pool, failed))
    other.start()
    while pool.stats()["connecting"] < 1:
        time.sleep(0.001)
    threading.Timer(0.1, release.set).start()
    assert pool.warm() == 1  # waited, saw the other connect fail, connected itself
    other.join(5)
    assert isinstance(failed[0], DatabaseUnavailable) and pool.stats()["idle"] == 1


def _warm_into(pool: Pool, failures: list[BaseException]) -> None:
    try:
        pool.warm()
    except BaseException as exc:
        failures.append(exc)


def test_upkeep_opens_no_spare_beside_a_leased_connection() -> None:
    """A worker serving one request at a time: the upkeep timer that wakes mid-request found
    no idle connection and opened a second one, never used, held open against the server's
    max_connections (measured: 4 uWSGI workers under load held 7 sessions)."""
    driver = FakeDriver()
    pool = make_pool(driver, min_idle=1, max_size=2)
    pool.warm()
    with pool.connection():
        assert pool.maintenance_due_in() != 0.0
        pool.maintain()
        assert pool.warm() == 0
        assert len(driver.opened) == 1
    with pool.connection(), pool.connection():  # two at once: the second connects on demand
        assert len(driver.opened) == 2
    assert pool.stats()["idle"] == 2


def test_after_a_timeout_the_next_checkout_waits_for_the_timers_reconnect() -> None:
    """A query timed out; the response's upkeep left the reconnect to the timer thread and woke
    it. The next request, arriving before that thread got a CPU, failed fast with "not
    answering" although the server was fine (seen under load in
    tests/e2e/test_killed_connections.py). It waits up to PROBE_WAIT for that connect now."""
    from postfork.pool.silence import PROBE_WAIT

    def timed_out_request(pool: Pool) -> None:
        lease = pool.connection()
        with lease:
            lease.invalidate(timed_out=True)  # the driver's read timed out

    driver = FakeDriver()
    pool = make_pool(driver, min_idle=1, max_size=2)
    pool.warm()
    timed_out_request(pool)
    # the control: nobody said a reconnect is coming, so the checkout fails at once
    with pytest.raises(DatabaseUnavailable, match="is not answering"):
        pool.connection().__enter__()
    time.sleep(0.6)  # past the silence backoff: a checkout would connect by itself again
    timed_out_request(pool)
    pool.maintain(connect=False)  # the response's upkeep (degraded: the timer will refill)
    timer = threading.Timer(PROBE_WAIT / 3, pool.maintain)  # the timer thread, late
    timer.start()
    started = time.monotonic()
    with pool.connection():
        assert time.monotonic() - started < PROBE_WAIT
    timer.join()
    assert not pool.degraded
