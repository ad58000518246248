from __future__ import annotations

import pytest

from postfork import ConfigError, parse_url


def test_full_url_is_split_into_its_parts() -> None:
    url = parse_url("mysql://app:p%40ss%2Fw0rd@db.internal:3307/shop?connect_timeout=2.5")
    assert (url.user, url.password, url.host, url.port, url.database) == (
        "app",
        "p@ss/w0rd",
        "db.internal",
        3307,
        "shop",
    )
    assert url.options == {"connect_timeout": 2.5}
    assert url.driver is None


def test_defaults_and_unix_socket() -> None:
    url = parse_url("mysql://localhost/test?unix_socket=/run/mysqld/mysqld.sock")
    assert (url.user, url.password, url.port) == ("root", "", 3306)
    assert url.unix_socket == "/run/mysqld/mysqld.sock"
    assert url.target == "unix socket /run/mysqld/mysqld.sock"


@pytest.mark.parametrize(
    ("scheme", "driver"),
    [("mysql+pymysql", "pymysql"), ("mysql+mysqldb", "mysqlclient"), ("mariadb", None)],
)
def test_scheme_may_name_the_driver(scheme: str, driver: str | None) -> None:
    assert parse_url(f"{scheme}://u@h/db").driver == driver


def test_password_never_appears_in_str_repr_or_redacted_form() -> None:
    url = parse_url("mysql://app:hunter2-secret@h:3306/db")
    for text in (str(url), repr(url), url.redacted()):
        assert "hunter2-secret" not in text
    assert url.redacted() == "mysql://app:***@h:3306/db"
    assert parse_url(url.render_secret()) == url


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "empty"),
        ("postgres://u@h/db", "scheme must be mysql"),
        ("mysql+odbc://u@h/db", "unknown driver 'odbc'"),
        ("mysql://u@h:notaport/db", "invalid port"),
        ("mysql://u@h:99999/db", "invalid port"),
        ("mysql://u@h/db?color=blue", "unknown database URL option 'color'"),
        ("mysql://u@h/db?connect_timeout=-1", "positive number"),
        ("mysql://u@h/db?connect_timeout=abc", "positive number"),
        ("mysql://u@h/db?unix_socket=", "is empty"),
        ("mysql://u@h/a/b", "single database name"),
    ],
)
def test_malformed_urls_raise_config_error_saying_what_is_wrong(bad: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_url(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "mysql://app:pa/ss-secret@h/db",
        "mysql://app:pa?ss-secret@h/db",
        "mysql://app:pa#ss-secret@h/db",
    ],
)
def test_unencoded_special_characters_in_password_are_rejected_without_echoing_it(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_url(bad)
    assert "ss-secret" not in str(info.value)
    assert "percent-encode" in str(info.value)
