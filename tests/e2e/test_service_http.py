"""The service's HTTP contract under real uWSGI: input rules, pagination, and a database that
goes away and comes back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import ServiceProcess, free_port, get

from .conftest import seed_server

BIG = "9" * 20


@pytest.fixture(scope="module")
def service(service_db: EmbeddedMariaDB) -> Iterator[ServiceProcess]:
    options = ServeOptions(
        server="uwsgi", processes=2, max_requests=0, bind=f"127.0.0.1:{free_port()}"
    )
    with ServiceProcess(service_db.url, options) as running:
        yield running


BAD_REQUESTS = [
    ("/v1/accounts/abc/summary", "account id must be a positive integer"),
    ("/v1/accounts/-1/summary", "account id must be a positive integer"),
    ("/v1/accounts/1.5/summary", "account id must be a positive integer"),
    ("/v1/accounts/%20/summary", "account id must be a positive integer"),
    ("/v1/accounts/0/summary", "account id must be between 1 and"),
    ("/v1/accounts/007/summary", "account id must be between 1 and"),
    ("/v1/accounts/9223372036854775808/summary", "account id must be between 1 and"),
    (f"/v1/accounts/{BIG}/summary", "account id must be a positive integer"),
    ("/v1/accounts/1%20OR%201=1/summary", "account id must be a positive integer"),
    ("/v1/accounts/1/summary?verbose=1", "unknown query parameter 'verbose'"),
    ("/v1/accounts/1/orders?limit=0", "limit must be an integer from 1 to 500"),
    ("/v1/accounts/1/orders?limit=501", "limit must be an integer from 1 to 500"),
    ("/v1/accounts/1/orders?limit=abc", "limit must be an integer from 1 to 500"),
    ("/v1/accounts/1/orders?limit=", "limit must be an integer from 1 to 500"),
    ("/v1/accounts/1/orders?limit=5&limit=6", "given more than once"),
    ("/v1/accounts/1/orders?before=0", "before must be between 1 and"),
    ("/v1/accounts/1/orders?before=-5", "before must be a positive integer"),
    ("/v1/accounts/1/orders?before=1%20OR%201%3D1", "before must be a positive integer"),
    ("/v1/accounts/1/orders?before=1;DROP%20TABLE%20orders", "before must be a positive integer"),
    ("/v1/accounts/1/orders?sort=id", "unknown query parameter 'sort'"),
]


@pytest.mark.parametrize(("path", "message"), BAD_REQUESTS)
def test_bad_input_is_a_400_with_a_json_error(
    service: ServiceProcess, path: str, message: str
) -> None:
    response = get(service.port, path)
    assert response.status == 400
    assert response.headers["content-type"] == "application/json"
    assert message in response.body["error"]
    assert set(response.body) == {"error"}


def test_unknown_account_and_endpoint_are_404_and_methods_405(service: ServiceProcess) -> None:
    missing = get(service.port, "/v1/accounts/999999/summary")
    assert (missing.status, missing.body) == (404, {"error": "account 999999 not found"})
    assert get(service.port, "/v1/accounts/999999/orders").status == 404
    assert get(service.port, "/v2/nothing").status == 404
    post = get(service.port, "/v1/accounts/1/summary", method="POST")
    assert post.status == 405 and post.headers["allow"] == "GET, HEAD"


def test_summary_and_keyset_pagination_agree(service: ServiceProcess) -> None:
    summary = get(service.port, "/v1/accounts/3/summary")
    assert summary.status == 200
    body = summary.body
    assert body["account_id"] == 3 and body["orders"] > 0
    assert len(body["top_categories"]) == 3
    assert body["largest"] >= body["average"] > 0
    seen: list[int] = []
    total = 0.0
    before = ""
    while True:
        page = get(service.port, f"/v1/accounts/3/orders?limit=7{before}")
        assert page.status == 200
        seen += [order["id"] for order in page.body["orders"]]
        total += sum(order["amount"] for order in page.body["orders"])
        if page.body["next_before"] is None:
            break
        before = f"&before={page.body['next_before']}"
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == len(seen)
    assert len(seen) == body["orders"]
    assert round(total, 2) == body["total"]


def test_every_response_carries_server_timing_and_never_internals(service: ServiceProcess) -> None:
    for path in [
        "/v1/accounts/5/summary",
        "/v1/accounts/x/summary",
        "/healthz",
        "/readyz",
        "/v1/accounts/5/orders?limit=3",
    ]:
        response = get(service.port, path)
        assert set(response.timing) >= {"db-connect", "db", "app"}
        text = str(response.body)
        assert "Traceback" not in text and "SELECT" not in text
    head = get(service.port, "/v1/accounts/5/summary", method="HEAD")
    assert head.status == 200 and head.body is None


def test_stopped_database_gives_quick_503s_and_service_resumes(private_server) -> None:
    db = private_server()
    seed_server(db)
    options = ServeOptions(
        server="uwsgi", processes=2, max_requests=0, bind=f"127.0.0.1:{free_port()}"
    )
    with ServiceProcess(db.url, options) as service:
        assert get(service.port, "/v1/accounts/1/summary").status == 200
        db.terminate()
        for _ in range(6):
            down = get(service.port, "/v1/accounts/1/summary")
            assert down.status == 503 and down.headers["retry-after"] == "1"
            assert down.elapsed < 3.0  # within the checkout/connect timeout, never a hang
            assert down.body == {"error": "database unavailable, retry shortly"}
        assert get(service.port, "/readyz").status == 503
        assert get(service.port, "/healthz").status == 200
        db.start()
        back = time.monotonic()
        while get(service.port, "/v1/accounts/1/summary").status != 200:
            assert time.monotonic() - back < 5, "service did not resume"
            time.sleep(0.05)
        resumed = time.monotonic() - back
        assert get(service.port, "/readyz").status == 200
    assert resumed < 1.0
