"""Driver adapters without a server: what each connect asks for, and what it costs."""

from __future__ import annotations

import ssl

import pytest

from postfork import ConfigError, parse_url
from postfork.drivers import load_async_driver, load_driver

PLAIN = parse_url("mysql://app:pw@db.example:3306/shop")


@pytest.mark.parametrize("name", ["mysqlclient", "pymysql"])
def test_a_connect_without_tls_options_builds_no_ssl_context(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every connect once built an SSLContext to check TLS files it did not have: 0.2 ms each,
    ~20 ms for a fresh worker's first connect on a busy machine (OpenSSL's set-up)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an SSLContext was built for a URL without TLS")

    monkeypatch.setattr(ssl, "SSLContext", refuse)
    kwargs = load_driver(name).connect_kwargs(PLAIN, 5.0, False)
    assert "ssl" not in kwargs


@pytest.mark.parametrize(
    ("sync", "asyncio_name"), [("mysqlclient", "asyncmy"), ("pymysql", "aiomysql")]
)
def test_each_pool_refuses_the_other_kind_of_driver_and_names_the_right_pool(
    sync: str, asyncio_name: str
) -> None:
    with pytest.raises(ConfigError, match=r"use postfork\.AsyncPool"):
        load_driver(asyncio_name)
    with pytest.raises(ConfigError, match=r"use postfork\.Pool"):
        load_async_driver(sync)
