"""Every option defined once: the same rule and the same message wherever a value comes from
(pool keyword, settings mapping, URL, environment, command line)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from postfork import ConfigError, Pool, PoolOptions, environment, parse_url
from postfork.validate import FRACTION, NON_NEGATIVE_INTEGER, POSITIVE_SECONDS

from .fakes import FakeDriver


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan"), True, "5", None])
def test_positive_seconds_refuses_what_is_not_a_positive_finite_number(value: object) -> None:
    with pytest.raises(ConfigError, match="checkout_timeout must be a positive number of seconds"):
        POSITIVE_SECONDS.check("checkout_timeout", value)


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("7", 7)])
def test_whole_numbers_parse_from_text(text: str, value: int) -> None:
    assert NON_NEGATIVE_INTEGER.parse(text) == value


@pytest.mark.parametrize("text", ["-1", "1.5", "seven", ""])
def test_a_bad_text_says_what_was_expected(text: str) -> None:
    with pytest.raises(ValueError, match=f"must be a whole number, got {text!r}"):
        NON_NEGATIVE_INTEGER.parse(text)


def test_fraction_is_half_open() -> None:
    assert FRACTION.check("jitter", 0.0) == 0.0
    with pytest.raises(ConfigError, match=r"in \[0, 1\)"):
        FRACTION.check("jitter", 1.0)


def test_the_same_rule_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTFORK_CHECKOUT_TIMEOUT", "-2")
    with pytest.raises(ConfigError, match="POSTFORK_CHECKOUT_TIMEOUT must be a positive number"):
        environment.number("POSTFORK_CHECKOUT_TIMEOUT", 2.0, POSITIVE_SECONDS)
    with pytest.raises(ConfigError, match="'read_timeout' must be a positive number of seconds"):
        parse_url("mysql://u@h/db?read_timeout=-2")


def test_options_from_a_mapping_name_an_unknown_key_and_list_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        PoolOptions.from_mapping({"max_size": 2, "pool_size": 4}, where="OPTIONS keys")
    message = str(info.value)
    assert message.startswith("unknown OPTIONS keys: pool_size; known: min_idle, max_size")
    assert PoolOptions.from_mapping({"max_size": 2}).max_size == 2


def test_connect_args_reach_the_driver_on_every_connect() -> None:
    driver = FakeDriver()
    pool = Pool(
        "mysql://u@h/db",
        driver=driver,
        min_idle=2,
        connect_args={"client_flag": 2},  # type: ignore[arg-type]
    )
    pool.warm()
    assert driver.connect_args_seen == [{"client_flag": 2}] * 2
    with pytest.raises(ConfigError, match="connect_args must be a mapping"):
        Pool("mysql://u@h/db", driver=driver, connect_args=[("client_flag", 2)])  # type: ignore[arg-type]


CHECK_MISSING = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # as if that package were not installed
import postfork
try:
    exec(sys.argv[2])
except postfork.MissingExtra as exc:
    print(exc)
"""


@pytest.mark.parametrize(
    ("blocked", "code", "message"),
    [
        (
            "MySQLdb",
            "postfork.Pool('mysql://u@h/db')",
            "driver 'mysqlclient' is not installed: pip install 'postfork[mysqlclient]' "
            "(or choose driver='pymysql', or a mysql+pymysql:// URL)",
        ),
        (
            "pymysql",
            "postfork.Pool('mysql+pymysql://u@h/db')",
            "driver 'pymysql' is not installed: pip install 'postfork[pymysql]'",
        ),
        (
            "prometheus_client",
            "from postfork.wsgi import ServiceMetrics; ServiceMetrics(None)",
            "prometheus_client is not installed: pip install 'postfork[metrics]' "
            "(or POSTFORK_METRICS=off)",
        ),
        (
            "sqlalchemy",
            "from postfork_tools.service.baselines import SQLAlchemyPool; SQLAlchemyPool('mysql://u@h/d')",
            "SQLAlchemy is not installed: pip install 'postfork[sqlalchemy]'",
        ),
    ],
)
def test_a_missing_extra_is_named_with_its_install_command(
    blocked: str, code: str, message: str, tmp_path: object
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK_MISSING, blocked, code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert message in done.stdout
