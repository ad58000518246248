"""Timing and profiling middleware around a small WSGI app that uses a real Pool (fake driver)."""

from __future__ import annotations

import json
import logging
import os
import pstats
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from postfork import Pool
from postfork.errors import ConfigError
from postfork.wsgi import ProfileSettings, ProfilingMiddleware, TimingMiddleware

from .fakes import FakeDriver

URL = "mysql://app:secret@db.internal:3306/shop"


def make_app(pool: Pool) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with pool.connection():
            pass
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def call(app: Any, path: str = "/x", query: str = "") -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query}
    body = app(environ, start_response)
    data = b"".join(body)
    getattr(body, "close", lambda: None)()  # as a WSGI server does
    return seen["status"], seen["headers"], data


@pytest.fixture
def pool() -> Iterable[Pool]:
    with Pool(URL, driver=FakeDriver(), min_idle=0, max_size=2) as created:  # type: ignore[arg-type]
        yield created


def test_server_timing_reports_the_connect_only_on_the_request_that_paid_it(pool: Pool) -> None:
    app = TimingMiddleware(make_app(pool), access_log_format="off")
    _, first, _ = call(app)
    _, second, _ = call(app)
    timing = [
        dict(item.split(";dur=") for item in h["Server-Timing"].split(", "))
        for h in (first, second)
    ]
    assert list(timing[0]) == ["db-connect", "pool-wait", "db", "app"]
    assert float(timing[0]["db-connect"]) > 0
    assert float(timing[1]["db-connect"]) == 0
    assert first["X-Worker"] == f"{os.getpid()}/1"
    assert second["X-Worker"] == f"{os.getpid()}/2"


def test_access_log_logfmt_and_json(pool: Pool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="postfork.access")
    call(TimingMiddleware(make_app(pool)), "/v1/a b", "x=1")
    line = caplog.records[-1].getMessage()
    assert line.startswith('method=GET path="/v1/a b?x=1" status=200 duration_ms=')
    for key in ("pid=", "request=1", "connect_ms=", "db_ms=", "wait_ms="):
        assert key in line
    call(TimingMiddleware(make_app(pool), access_log_format="json"))
    record = json.loads(caplog.records[-1].getMessage())
    assert record["status"] == 200 and record["request"] == 1 and record["pid"] == os.getpid()
    assert record["connect_ms"] == 0  # the pool already had an idle connection
    assert "secret" not in caplog.text


def test_unknown_access_log_format_is_a_config_error(pool: Pool) -> None:
    with pytest.raises(ConfigError, match="logfmt, json, off"):
        TimingMiddleware(make_app(pool), access_log_format="xml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ProfileSettings()),
        ("off", ProfileSettings()),
        ("every=2", ProfileSettings(every=2)),
        ("first=3, slower_than_ms=20, top=10", ProfileSettings(first=3, slower_than_ms=20, top=10)),
        (
            "rate=0.01,dir=/tmp/p,sort=tottime",
            ProfileSettings(rate=0.01, dir="/tmp/p", sort="tottime"),
        ),
    ],
)
def test_profile_settings_parse(text: str, expected: ProfileSettings) -> None:
    assert ProfileSettings.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("every", "not NAME=VALUE"),
        ("often=2", "not NAME=VALUE"),
        ("every=two", "every='two' is out of range"),
        ("rate=1.5", "rate='1.5' is out of range"),
        ("top=0,every=1", "top='0' is out of range"),
        ("sort=fastest,every=1", "not a pstats sort key"),
        ("slower_than_ms=5", "at least one of every=, first= or rate="),
    ],
)
def test_profile_settings_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ProfileSettings.parse(text)


def test_sampling_rules() -> None:
    every = ProfileSettings(every=3)
    assert [n for n in range(1, 10) if every.wants(n)] == [3, 6, 9]
    first = ProfileSettings(first=2)
    assert [n for n in range(1, 10) if first.wants(n)] == [1, 2]
    assert not any(ProfileSettings(rate=0.0).wants(n) for n in range(100))


def test_profiles_go_to_the_log_and_to_files(
    pool: Pool, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, logger="postfork.profile")
    settings = ProfileSettings(every=2, top=60, dir=str(tmp_path))
    app = ProfilingMiddleware(make_app(pool), settings)
    for _ in range(4):
        assert call(app)[2] == b"ok"
    profiles = [r.getMessage() for r in caplog.records if r.name == "postfork.profile"]
    assert len(profiles) == 2
    assert profiles[0].startswith(f"profile pid={os.getpid()} request=2 method=GET path=/x")
    assert "cumulative" in profiles[0] and "connection" in profiles[0]  # Pool.connection
    files = sorted(tmp_path.glob("*.prof"))
    assert [f.name for f in files] == [f"{os.getpid()}-000002.prof", f"{os.getpid()}-000004.prof"]
    assert pstats.Stats(str(files[0])).total_calls > 0  # type: ignore[attr-defined]


def slow_app(pool: Pool, seconds: float) -> Callable[..., Iterable[bytes]]:
    inner = make_app(pool)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        time.sleep(seconds)  # a request slow in the app: the profile must show where
        return inner(environ, start_response)

    return app


def test_slower_than_keeps_only_slow_profiles(pool: Pool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="postfork.profile")
    app = ProfilingMiddleware(make_app(pool), ProfileSettings(every=1, slower_than_ms=10_000))
    call(app)
    assert not [r for r in caplog.records if r.name == "postfork.profile"]
    slow = ProfilingMiddleware(slow_app(pool, 0.03), ProfileSettings(every=1, slower_than_ms=20))
    assert call(slow)[2] == b"ok"
    (profile,) = [r.getMessage() for r in caplog.records if r.name == "postfork.profile"]
    duration = float(profile.split("duration_ms=")[1].split()[0])
    assert duration >= 20
    assert "{built-in method time.sleep}" in profile  # the profile shows where the time went


def test_rate_sampling_follows_the_random_generator(
    pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="postfork.profile")
    draws = random.Random(5)
    expected = [n for n in range(1, 41) if draws.random() < 0.25]
    app = ProfilingMiddleware(make_app(pool), ProfileSettings(rate=0.25), rng=random.Random(5))
    for _ in range(40):
        call(app)
    profiled = [
        int(r.getMessage().split("request=")[1].split()[0])
        for r in caplog.records
        if r.name == "postfork.profile"
    ]
    assert profiled == expected and 0 < len(expected) < 40


def test_timing_counts_only_what_happens_inside_its_request(pool: Pool) -> None:
    app = TimingMiddleware(make_app(pool), access_log_format="off")
    with pool.connection():  # outside any request: reported to nobody
        pass
    _, headers, _ = call(app)
    timing = dict(item.split(";dur=") for item in headers["Server-Timing"].split(", "))
    assert float(timing["db-connect"]) == 0  # the connect above belonged to no request
    assert float(timing["db"]) > 0


def test_the_synthetic_warm_up_is_not_counted_as_a_request(
    pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    """install()'s warm-up runs through the app, but the exit line, X-Worker numbers, the
    access log and the metrics count only the server's requests."""
    app = TimingMiddleware(make_app(pool))
    seen: list[str] = []
    app.observers.append(lambda environ, timing, status, seconds: seen.append("observed"))
    warm = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "QUERY_STRING": "", "postfork.warmup": True}
    with caplog.at_level(logging.INFO, logger="postfork.access"):
        body = app(warm, lambda status, headers, *exc: None)
        assert b"".join(body)  # the app ran
        assert app.requests.in_this_process()[0] == 0 and not seen
        _, headers, _ = call(app)
    assert headers["X-Worker"] == f"{os.getpid()}/1"  # the first real request is number 1
    assert app.requests.in_this_process()[0] == 1 and seen == ["observed"]
    assert len([r for r in caplog.records if r.name == "postfork.access"]) == 1
