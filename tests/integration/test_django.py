"""The postfork.django backend against a real server: what a request costs, next to stock
Django's backend, and what Django users rely on (atomic, select_for_update, threads)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from postfork import ConfigError, DatabaseURL
from postfork_tools.bench.delay_proxy import ProxyProcess, proxy_target

from .conftest import admin_query

ALIASES = {
    "postfork": {"ENGINE": "postfork.django", "CONN_MAX_AGE": 0},
    "postfork_health": {
        "ENGINE": "postfork.django",
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
    },
    "stock": {"ENGINE": "django.db.backends.mysql", "CONN_MAX_AGE": 0},
    "stock_health": {
        "ENGINE": "django.db.backends.mysql",
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
    },
}


def database(url: DatabaseURL, **overrides: Any) -> dict[str, Any]:
    return {
        "NAME": url.database,
        "USER": url.user,
        "PASSWORD": url.password,
        "HOST": url.unix_socket or url.host,
        "PORT": "" if url.unix_socket else url.port,
        "OPTIONS": {"pool": {"max_size": 3}} if overrides["ENGINE"] == "postfork.django" else {},
        **overrides,
    }


@pytest.fixture(scope="module")
def connections(database_url: DatabaseURL) -> Any:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DATABASES={
                "default": database(database_url, ENGINE="postfork.django"),
                **{alias: database(database_url, **kw) for alias, kw in ALIASES.items()},
            },
            USE_TZ=True,
        )
        django.setup()
    from django.db import connections as handler

    yield handler
    handler.close_all()


def request(alias: str, sql: str = "SELECT 1") -> Any:
    """What Django does around one view that runs one query."""
    from django.core.signals import request_finished, request_started
    from django.db import connections

    request_started.send(sender=None)
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0]
    finally:
        request_finished.send(sender=None)


@pytest.fixture
def through_proxy(connections: Any, database_url: DatabaseURL) -> Iterator[Any]:
    """Point an alias at a fresh counting proxy; yields a function measuring requests."""
    proxies: list[ProxyProcess] = []
    restore: dict[str, dict[str, Any]] = {}

    def measure(alias: str, requests: int) -> dict[str, Any]:
        proxy = ProxyProcess(proxy_target(database_url), 0.0)
        proxies.append(proxy)
        wrapper = connections[alias]
        wrapper.close()
        settings = wrapper.settings_dict
        restore.setdefault(alias, {"HOST": settings["HOST"], "PORT": settings["PORT"]})
        settings.update(HOST="127.0.0.1", PORT=proxy.port)
        for _ in range(requests):
            assert request(alias) == 1
        wrapper.close()
        return proxy.stop()

    yield measure
    for proxy in proxies:
        proxy.__exit__(None, None, None)
    for alias, address in restore.items():
        connections[alias].close()
        connections[alias].settings_dict.update(address)


def per_request(measure: Any, alias: str) -> tuple[float, float]:
    """(connects, MySQL commands) per request: two runs, so set-up cancels out."""
    short, long = measure(alias, 10), measure(alias, 30)
    return (
        (long["connections"] - short["connections"]) / 20,
        (long["client_commands"] - short["client_commands"]) / 20,
    )


def test_a_request_costs_no_connect_and_one_statement_where_stock_django_connects(
    through_proxy: Any,
) -> None:
    connects, commands = per_request(through_proxy, "postfork")
    assert connects == 0 and commands == pytest.approx(1, abs=0.1)  # the query: nothing else
    stock_connects, stock_commands = per_request(through_proxy, "stock")
    assert stock_connects == 1  # CONN_MAX_AGE = 0: a connection per request
    assert stock_commands >= 3  # session set-up, the query, COM_QUIT (and a handshake)


def test_health_checks_cost_no_round_trip_where_stock_django_pings(through_proxy: Any) -> None:
    _, commands = per_request(through_proxy, "postfork_health")
    assert commands == pytest.approx(1, abs=0.1)
    _, stock_commands = per_request(through_proxy, "stock_health")
    assert stock_commands == pytest.approx(2, abs=0.1)  # a ping, then the query


def test_a_killed_session_fails_the_free_health_check_and_is_replaced(
    connections: Any, database_url: DatabaseURL
) -> None:
    wrapper = connections["postfork_health"]
    victim = request("postfork_health", "SELECT CONNECTION_ID()")
    admin_query(database_url, f"KILL {int(victim)}")
    time.sleep(0.1)
    assert not wrapper.is_usable()
    assert request("postfork_health", "SELECT CONNECTION_ID()") != victim  # no error


def test_threads_get_a_connection_each_from_the_pool(connections: Any) -> None:
    connections["postfork_health"].close()  # this thread's persistent one goes back first
    seen: list[int] = []
    all_holding = threading.Barrier(3, timeout=10)

    def work() -> None:
        seen.append(request("postfork_health", "SELECT CONNECTION_ID()"))
        all_holding.wait()  # three threads, three connections held at once
        connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(set(seen)) == 3
    pool = connections["postfork_health"].postfork_pool()
    assert pool.stats()["in_use"] == 0 and pool.options.max_size == 3


def test_atomic_select_for_update_and_a_rollback_on_error(
    connections: Any, database_url: DatabaseURL
) -> None:
    from django.db import transaction

    admin_query(database_url, "CREATE TABLE IF NOT EXISTS pf_dj_acc (id INT PRIMARY KEY, n INT)")
    admin_query(database_url, "REPLACE INTO pf_dj_acc VALUES (1, 0)")
    try:
        with transaction.atomic(using="postfork"):
            cursor = connections["postfork"].cursor()
            cursor.execute("SELECT n FROM pf_dj_acc WHERE id = 1 FOR UPDATE")
            cursor.execute("UPDATE pf_dj_acc SET n = n + 1 WHERE id = 1")
        with pytest.raises(RuntimeError), transaction.atomic(using="postfork"):
            connections["postfork"].cursor().execute("UPDATE pf_dj_acc SET n = 100 WHERE id = 1")
            raise RuntimeError("the view failed")
        assert admin_query(database_url, "SELECT n FROM pf_dj_acc WHERE id = 1") == [(1,)]
        with transaction.atomic(using="postfork"):  # closed inside a transaction: never reused
            connections["postfork"].cursor().execute("SELECT 1")
            held = connections["postfork"].connection
            connections["postfork"].close()
        connections["postfork"].close()
        assert not held.open
    finally:
        admin_query(database_url, "DROP TABLE IF EXISTS pf_dj_acc")


def test_an_unknown_pool_option_names_the_known_ones(connections: Any) -> None:
    wrapper = connections["postfork"]
    original = wrapper.settings_dict["OPTIONS"]
    wrapper.settings_dict["OPTIONS"] = {"pool": {"size": 3}}
    try:
        with pytest.raises(ConfigError, match=r"unknown OPTIONS\['pool'\] key\(s\): size; known"):
            wrapper.ensure_connection()
    finally:
        wrapper.settings_dict["OPTIONS"] = original
