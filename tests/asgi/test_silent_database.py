"""A database that goes silent, under the asyncio pool: the ASGI twin of the reference service
behind the delay proxy told ``hold`` (sockets open, nothing answers). The same bounds as the
WSGI service (tests/e2e/test_silent_database.py, whose machinery this reuses): every answer a
200 or a JSON 503 within 3 s, back within 1 s of the silence ending."""

from __future__ import annotations

import pytest

from postfork_tools.bench.delay_proxy import ProxyProcess, proxied, proxy_target
from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import ServiceProcess, free_port, get
from tests.e2e.conftest import service_db  # noqa: F401  (the seeded private server)
from tests.e2e.test_silent_database import (  # noqa: F401  (proxy: a fixture)
    BOUND,
    RECOVERY,
    SILENCE,
    SLOW_MS,
    _back_within,
    _request_with_silence,
    answer_or_nothing,
    proxy,
    silence_under_traffic,
)

# under load, uvicorn's workers (uvicorn --workers, gunicorn's UvicornWorker) and hypercorn's
# reset connections accepted just before a recycled worker shuts down, database or not (see
# test_servers): recycling every 5 requests under gunicorn's own ASGI worker, uvicorn without
SERVED = [("gunicorn-asgi", 5), ("uvicorn", 0)]


def options(server: str, **changes: object) -> ServeOptions:
    base = {"server": server, "processes": 2, "max_requests": 5, "driver": "asyncmy"}
    return ServeOptions(bind=f"127.0.0.1:{free_port()}", **{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(("server", "max_requests"), SERVED)
@pytest.mark.parametrize("silence", ["hold", "hold-handshakes"])
def test_silence_under_load_is_answered_within_the_bound(
    service_db: EmbeddedMariaDB,  # noqa: F811
    proxy: ProxyProcess,  # noqa: F811
    server: str,
    max_requests: int,
    silence: str,
) -> None:
    served = options(server, max_requests=max_requests)
    with ServiceProcess(proxied(service_db.url, proxy.port), served) as service:
        silence_under_traffic(service, proxy, silence)


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn-uvicorn", "hypercorn"])
def test_silence_mid_query_ends_at_the_read_timeout_not_retried(
    service_db: EmbeddedMariaDB,  # noqa: F811
    server: str,
) -> None:
    with ProxyProcess(proxy_target(service_db.url), SLOW_MS) as slow:
        served = options(server, processes=1, max_requests=0)
        with ServiceProcess(proxied(service_db.url, slow.port), served) as service:
            assert get(service.port, "/v1/accounts/1/summary").status == 200
            answer = _request_with_silence(service.port, slow, after=0.01)
            slow.command("flow")
            assert answer.status == 503 and answer.elapsed < BOUND, answer
            assert answer.body == {"error": "database query exceeded the read timeout (2 s)"}
            assert _back_within(service.port, RECOVERY)
            log = service.log()
    assert "retrying" not in log


@pytest.mark.parametrize("driver", ["asyncmy", "aiomysql"])
def test_silence_mid_query_is_cut_at_the_request_deadline(
    service_db: EmbeddedMariaDB,  # noqa: F811
    driver: str,
) -> None:
    """asyncmy with a 10 s read timeout, aiomysql with none at all: the request's deadline
    (2.5 s) ends the query."""
    with ProxyProcess(proxy_target(service_db.url), SLOW_MS) as slow:
        url = proxied(service_db.url, slow.port)
        url.options["read_timeout"] = 10
        served = options("uvicorn", processes=1, max_requests=0, driver=driver)
        with ServiceProcess(url, served) as service:
            assert get(service.port, "/v1/accounts/1/summary").status == 200
            answer = _request_with_silence(service.port, slow, after=0.01)
            slow.command("flow")
            assert answer.status == 503 and 2.4 < answer.elapsed < BOUND, answer
            assert answer.body == {
                "error": "database did not answer within the request deadline (2.5 s)"
            }
            assert _back_within(service.port, RECOVERY)


def test_silence_mid_handshake_ends_at_the_connect_timeout(
    service_db: EmbeddedMariaDB,  # noqa: F811
) -> None:
    with ProxyProcess(proxy_target(service_db.url), 0.0) as relay:
        served = options("uvicorn", processes=1, max_requests=0, connect="lazy")
        with ServiceProcess(proxied(service_db.url, relay.port), served) as service:
            relay.command("hold-handshakes")
            answer = answer_or_nothing(service.port, "/v1/accounts/1/summary")
            relay.command("flow")
            assert answer.status == 503 and answer.elapsed < BOUND, answer
            assert answer.body == {"error": "database unavailable, retry shortly"}
            assert _back_within(service.port, RECOVERY)
