"""A database that goes silent: bytes held, nothing closed, new sessions unanswered.

A forwarder between the service and MariaDB (postfork's delay proxy, told ``hold``) plays a
failover that moved an address or a lost NAT entry: the sockets stay open and nothing answers.
With the shipped defaults (read/write timeouts 2 s, request deadline 2.5 s, connect and checkout
timeouts 2 s), under real uWSGI and gunicorn recycling every 5 requests, every answer is a 200 or
a JSON 503 within 3 s, and the service is back within 1 s of the silence ending. The silence
starts at random points under load, and on purpose mid-query and mid-handshake; the control
(the bounds raised to 10 s) shows a request held past 3 s."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from postfork_tools.bench.delay_proxy import ProxyProcess, proxied, proxy_target
from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import Response, ServiceProcess, free_port, get

BOUND = 3.0  # seconds: every answer, whatever the database does
RECOVERY = 1.0  # seconds after the silence ends
SILENCE = 5.0
CLIENTS = 3
SLOW_MS = 30.0  # one way: a query is on its way for 30 ms, time to go silent in between


@dataclass
class Traffic:
    """Clients sending summary requests until stopped; answers as (sent at, response)."""

    port: int
    answers: list[tuple[float, Response]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Traffic:
        lock = threading.Lock()

        def client(offset: int) -> None:
            n = offset
            while not self.stop.is_set():
                sent = time.monotonic()
                response = answer_or_nothing(self.port, f"/v1/accounts/{n % 50 + 1}/summary")
                with lock:
                    self.answers.append((sent, response))
                n += CLIENTS

        self.threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


@pytest.fixture
def proxy(service_db: EmbeddedMariaDB) -> Iterator[ProxyProcess]:
    with ProxyProcess(proxy_target(service_db.url), 0.0) as running:
        yield running
        running.command("flow")


def served(db: EmbeddedMariaDB, proxy: ProxyProcess, options: ServeOptions) -> ServiceProcess:
    return ServiceProcess(proxied(db.url, proxy.port), options)


def answer_or_nothing(port: int, path: str, timeout: float = 15) -> Response:
    """The answer, or status 0 when none came (refused, reset, or not within ``timeout``)."""
    started = time.perf_counter()
    try:
        return get(port, path, timeout=timeout)
    except Exception as exc:  # recorded: the test fails on any status but 200 and 503
        return Response(0, {}, repr(exc), time.perf_counter() - started)


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
@pytest.mark.parametrize("silence", ["hold", "hold-handshakes"])
def test_silence_under_load_with_recycling_is_answered_within_the_bound(
    service_db: EmbeddedMariaDB, proxy: ProxyProcess, server: str, silence: str
) -> None:
    """``hold``: everything stops (queries mid-flight, connects of respawned workers);
    ``hold-handshakes``: live sessions answer, every new one stops after the greeting."""
    options = ServeOptions(
        server=server, processes=2, max_requests=5, bind=f"127.0.0.1:{free_port()}"
    )
    with served(service_db, proxy, options) as service:
        silence_under_traffic(service, proxy, silence)


def silence_under_traffic(service: ServiceProcess, proxy: ProxyProcess, silence: str) -> None:
    """Traffic through ``service`` while ``proxy`` keeps ``silence`` for SILENCE seconds: every
    answer a 200 or a JSON 503 within BOUND, back within RECOVERY of the silence ending."""
    with Traffic(service.port) as traffic:
        time.sleep(1.5)
        proxy.command(silence)
        silent_at = time.monotonic()
        time.sleep(SILENCE)
        flowing_from = time.monotonic()  # an answer before this came during the silence
        proxy.command("flow")
        back_at = time.monotonic()  # the silence has ended by now
        time.sleep(3.0)
    log = service.log()

    answers = traffic.answers
    unanswered = [(sent - silent_at, r.body) for sent, r in answers if r.status == 0]
    assert {r.status for _, r in answers} <= {200, 503}, unanswered
    slowest = max(r.elapsed for _, r in answers)
    assert slowest < BOUND, f"an answer took {slowest:.2f}s"
    # answered while the database was silent (sent after it began, answered before it ended)
    during = [
        r for sent, r in answers if silent_at + 0.1 < sent and sent + r.elapsed < flowing_from
    ]
    assert len(during) >= 5, f"{len(during)} answers during the silence"
    failed = [r for r in during if r.status == 503]
    assert all(r.headers["retry-after"] == "1" and "error" in r.body for r in failed)
    if silence == "hold":
        assert len(failed) == len(during)  # nothing can answer
    recovered = min(sent for sent, r in answers if sent > back_at and r.status == 200)
    assert recovered - back_at < RECOVERY
    late = [r for sent, r in answers if sent > recovered + 0.5 and r.status != 200]
    assert not late, late[:3]
    assert "Traceback" not in log
    assert "HARAKIRI" not in log and "WORKER TIMEOUT" not in log  # no last resort was needed


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
def test_silence_mid_query_ends_at_the_read_timeout_not_retried(
    service_db: EmbeddedMariaDB,
    server: str,
) -> None:
    """The query's bytes are on their way (30 ms one way) when the silence starts."""
    with ProxyProcess(proxy_target(service_db.url), SLOW_MS) as slow:
        options = ServeOptions(
            server=server, processes=1, max_requests=0, bind=f"127.0.0.1:{free_port()}"
        )
        with served(service_db, slow, options) as service:
            assert get(service.port, "/v1/accounts/1/summary").status == 200
            answer = _request_with_silence(service.port, slow, after=0.01)
            slow.command("flow")
            assert answer.status == 503 and answer.elapsed < BOUND
            assert answer.body == {"error": "database query exceeded the read timeout (2 s)"}
            assert _back_within(service.port, RECOVERY)
            log = service.log()
    assert "retrying" not in log  # a timed-out read is not run again


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
def test_silence_mid_query_is_cut_at_the_request_deadline(
    service_db: EmbeddedMariaDB, server: str
) -> None:
    """Read timeout 10 s in the URL: the request's deadline (2.5 s) ends it instead."""
    with ProxyProcess(proxy_target(service_db.url), SLOW_MS) as slow:
        url = proxied(service_db.url, slow.port)
        url.options["read_timeout"] = 10
        options = ServeOptions(
            server=server, processes=1, max_requests=0, bind=f"127.0.0.1:{free_port()}"
        )
        with ServiceProcess(url, options) as service:
            assert get(service.port, "/v1/accounts/1/summary").status == 200
            answer = _request_with_silence(service.port, slow, after=0.01)
            slow.command("flow")
            assert answer.status == 503 and 2.4 < answer.elapsed < BOUND
            assert answer.body == {
                "error": "database did not answer within the request deadline (2.5 s)"
            }
            assert _back_within(service.port, RECOVERY)


def test_control_without_the_bounds_a_silent_database_holds_the_request(
    service_db: EmbeddedMariaDB,
) -> None:
    """The control: read timeout and deadline raised to 10 s, as a service without chosen
    bounds: the same silence holds the request well past 3 s."""
    with ProxyProcess(proxy_target(service_db.url), SLOW_MS) as slow:
        url = proxied(service_db.url, slow.port)
        url.options["read_timeout"] = 10
        options = ServeOptions(processes=1, max_requests=0, bind=f"127.0.0.1:{free_port()}")
        env = {"POSTFORK_REQUEST_DEADLINE": "10"}
        with ServiceProcess(url, options, env=env) as service:
            assert get(service.port, "/v1/accounts/1/summary").status == 200
            answer = _request_with_silence(service.port, slow, after=0.01, timeout=BOUND + 1)
            slow.command("flow")
    assert answer.status == 0 or answer.elapsed > BOUND  # no answer within the bound


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
def test_silence_mid_handshake_ends_at_the_connect_timeout(
    service_db: EmbeddedMariaDB, server: str
) -> None:
    """A worker that connects on its first request (``lazy``): the greeting arrives, the
    client's answer is never delivered."""
    with ProxyProcess(proxy_target(service_db.url), 0.0) as proxy:
        options = ServeOptions(
            server=server,
            processes=1,
            max_requests=0,
            bind=f"127.0.0.1:{free_port()}",
            connect="lazy",
        )
        with served(service_db, proxy, options) as service:
            proxy.command("hold-handshakes")
            answer = answer_or_nothing(service.port, "/v1/accounts/1/summary")
            proxy.command("flow")
            assert answer.status == 503 and answer.elapsed < BOUND
            assert answer.body == {"error": "database unavailable, retry shortly"}
            assert _back_within(service.port, RECOVERY)
            assert "timed out or lost during the handshake" in service.log()


def _request_with_silence(
    port: int, proxy: ProxyProcess, *, after: float, timeout: float = 15
) -> Response:
    """One summary request; the proxy goes silent ``after`` seconds into it."""
    result: dict[str, Response] = {}
    thread = threading.Thread(
        target=lambda: result.update(
            answer=answer_or_nothing(port, "/v1/accounts/2/summary", timeout=timeout)
        )
    )
    thread.start()
    time.sleep(after)
    proxy.command("hold")
    thread.join(timeout + 5)
    return result["answer"]


def _back_within(port: int, seconds: float) -> bool:
    """Whether a 200 comes within ``seconds`` (a request every 50 ms; 503s until then)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if answer_or_nothing(port, "/v1/accounts/1/summary", timeout=seconds).status == 200:
            return True
        time.sleep(0.05)
    return False
