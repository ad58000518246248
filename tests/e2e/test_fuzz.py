"""Hostile input against the running service (real uWSGI, private MariaDB), property-based:
whatever the path, query string or method, the answer is never a 5xx, always JSON, never a
traceback; SQL-injection strings are inert (the data is unchanged afterwards)."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import ServiceProcess, free_port

INJECTIONS = [
    "1 OR 1=1",
    "1; DROP TABLE orders; --",
    "1' OR '1'='1",
    "1)) UNION SELECT password FROM mysql.user --",
    "%27%20OR%201=1",
    "1\x00",
    "../../etc/passwd",
    "9" * 40,
    "-1",
    "0x10",
    "1e3",
    "\u0661",  # ARABIC-INDIC DIGIT ONE: str.isdigit() says yes
]
segment = st.one_of(
    st.sampled_from(INJECTIONS),
    st.text(min_size=0, max_size=30),
    st.integers(min_value=-(2**64), max_value=2**64).map(str),
)
query_value = st.one_of(st.sampled_from(INJECTIONS), st.text(max_size=20), st.integers().map(str))
query = st.dictionaries(
    st.sampled_from(["limit", "before", "after", "x", "limit[]", ""]), query_value, max_size=3
)
method = st.sampled_from(["GET", "HEAD", "POST", "DELETE", "OPTIONS"])


@pytest.fixture(scope="module")
def service(service_db: EmbeddedMariaDB) -> Iterator[ServiceProcess]:
    options = ServeOptions(processes=2, max_requests=50, bind=f"127.0.0.1:{free_port()}")
    with ServiceProcess(service_db.url, options) as running:
        yield running


def raw_request(port: int, method_: str, target: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method_, target, skip_accept_encoding=True)
        conn.endheaders()
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def counts(db: EmbeddedMariaDB) -> tuple[int, int, int]:
    schema = db.url.database
    rows = db.execute(
        f"SELECT (SELECT COUNT(*) FROM {schema}.accounts), (SELECT COUNT(*) FROM {schema}.orders), "
        f"(SELECT SUM(amount_cents) FROM {schema}.orders)"
    )
    return int(rows[0][0]), int(rows[0][1]), int(rows[0][2])


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
@given(
    method_=method,
    endpoint=st.sampled_from(["summary", "orders", None]),
    account=segment,
    params=query,
)
def test_no_input_gets_a_5xx_or_a_traceback(
    service: ServiceProcess,
    method_: str,
    endpoint: str | None,
    account: str,
    params: dict[str, str],
) -> None:
    quoted = urllib.parse.quote(account, safe="")
    path = f"/v1/accounts/{quoted}/{endpoint}" if endpoint else f"/{quoted}"
    target = path + ("?" + urllib.parse.urlencode(params) if params else "")
    status, headers, body = raw_request(service.port, method_, target)
    assert status < 500, (target, status, body)
    if method_ != "HEAD":
        assert headers["content-type"] == "application/json"
        document = json.loads(body)
        if status >= 400:
            assert set(document) == {"error"}
    assert b"Traceback" not in body
    assert b"LEFT JOIN" not in body and b"information_schema" not in body  # none of our SQL


def test_injection_strings_change_nothing(
    service: ServiceProcess, service_db: EmbeddedMariaDB
) -> None:
    before = counts(service_db)
    for text in INJECTIONS:
        for target in (
            f"/v1/accounts/{urllib.parse.quote(text, safe='')}/summary",
            "/v1/accounts/1/orders?" + urllib.parse.urlencode({"before": text}),
            "/v1/accounts/1/orders?" + urllib.parse.urlencode({"limit": text}),
        ):
            status, _, _ = raw_request(service.port, "GET", target)
            assert status in (400, 404), (target, status)
    assert counts(service_db) == before
    assert "Traceback" not in service.log()
