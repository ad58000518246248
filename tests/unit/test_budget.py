"""The connection budget's arithmetic and the deployment files it reads (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from postfork import ConfigError
from postfork.doctor.budget import Limits, Shape, from_gunicorn_config, from_uwsgi_ini, judge
from postfork_tools.deploy import GUNICORN_CONF, UWSGI_INI


def limits(max_connections: int = 151, max_user: int = 0) -> Limits:
    return Limits(
        "db:3306", "primary", max_connections, max_user, 1, 9, "one-thread-per-connection"
    )


def test_the_peak_is_hosts_times_processes_times_max_size_whatever_the_traffic() -> None:
    verdict = judge(Shape(hosts=3, processes=32, max_size=4, min_idle=1), limits(500))
    assert (verdict.peak, verdict.warm, verdict.headroom) == (384, 96, 116)
    assert verdict.fits and verdict.recycle_peak == 384  # no recycling: nothing extra


def test_a_per_user_limit_is_the_ceiling_when_lower() -> None:
    verdict = judge(Shape(hosts=1, processes=8, max_size=4), limits(151, max_user=20))
    assert verdict.limits.ceiling == 20 and verdict.headroom == -12 and not verdict.fits


def test_recycling_adds_what_respawned_workers_open_while_their_predecessors_still_count() -> None:
    shape = Shape(hosts=2, processes=10, max_size=3, min_idle=3, max_requests=100)
    verdict = judge(shape, limits(100))
    assert verdict.peak == 60 and verdict.fits
    assert verdict.recycle_peak == 120 and not verdict.fits_while_recycling  # doubled
    assert judge(shape, limits(100), respawning=2).recycle_peak == 72


def test_the_shipped_uwsgi_ini_and_gunicorn_config_are_read() -> None:
    assert from_uwsgi_ini(UWSGI_INI) == {"processes": 4, "max_requests": 100}
    assert from_gunicorn_config(GUNICORN_CONF) == {"processes": 4, "max_requests": 100}


def test_an_ini_value_postfork_cannot_read_is_an_error_that_says_what_to_do(
    tmp_path: Path,
) -> None:
    ini = tmp_path / "app.ini"
    ini.write_text("[uwsgi]\nprocesses = $(WORKERS)\n")
    with pytest.raises(ConfigError, match=r"processes = '\$\(WORKERS\)' is not a number"):
        from_uwsgi_ini(ini)
    (tmp_path / "other.ini").write_text("[app]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"no \[uwsgi\] section"):
        from_uwsgi_ini(tmp_path / "other.ini")
