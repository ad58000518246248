"""Every postfork error crosses a pickle (multiprocessing sends exceptions between processes)
with its message and plain facts, and never with a pool, its lock or a password."""

from __future__ import annotations

import pickle

import pytest

from postfork import (
    ConfigError,
    DatabaseUnavailable,
    MissingExtra,
    Pool,
    PoolClosed,
    PoolTimeout,
)

from .fakes import FakeDriver

URL = "mysql://app:topsecret-pw@db.example/shop"


def roundtrip(error: BaseException) -> BaseException:
    return pickle.loads(pickle.dumps(error))  # type: ignore[no-any-return]


def test_a_pool_timeout_pickles_with_its_limits_but_not_its_pool() -> None:
    pool = Pool(URL, driver=FakeDriver(), min_idle=0, max_size=1, checkout_timeout=0.05)  # type: ignore[arg-type]
    with pool.connection(), pytest.raises(PoolTimeout) as info, pool.connection():
        pass
    copy = roundtrip(info.value)
    assert isinstance(copy, PoolTimeout) and str(copy) == str(info.value)
    assert (copy.max_size, copy.checkout_timeout, copy.pid) == (1, 0.05, info.value.pid)
    assert copy.waited == info.value.waited > 0
    assert copy.pool is None and copy.pool_repr == info.value.pool_repr
    assert "in_use=1 max_size=1" in copy.pool_repr  # the pool as it was when the error arose
    assert "topsecret-pw" not in pickle.dumps(info.value).decode("latin-1")


def test_a_closed_pool_error_pickles() -> None:
    pool = Pool(URL, driver=FakeDriver(), min_idle=0)  # type: ignore[arg-type]
    pool.close()
    with pytest.raises(PoolClosed) as info, pool.connection():
        pass
    copy = roundtrip(info.value)
    assert type(copy) is PoolClosed and str(copy) == str(info.value)


@pytest.mark.parametrize(
    "error",
    [
        DatabaseUnavailable("cannot connect to MySQL at db:3306: refused", code=2003),
        ConfigError("max_size must be a positive integer, got 0"),
        MissingExtra("driver 'mysqlclient'", "mysqlclient", hint="or choose driver='pymysql'"),
    ],
)
def test_other_errors_pickle_with_their_facts(error: Exception) -> None:
    copy = roundtrip(error)
    assert type(copy) is type(error) and str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_a_missing_extra_names_the_install_command() -> None:
    error = MissingExtra("prometheus_client", "metrics", hint="or POSTFORK_METRICS=off")
    assert str(error) == (
        "prometheus_client is not installed: pip install 'postfork[metrics]' "
        "(or POSTFORK_METRICS=off)"
    )
    assert isinstance(error, ConfigError) and isinstance(error, ImportError)
