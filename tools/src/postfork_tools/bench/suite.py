"""``postfork bench``: every scenario in one run, on one machine, one database, one proxy.

The order of work: pick the database (argument, ``DATABASE_URL`` or the embedded MariaDB) and
seed it; start the delay proxy and measure what it really adds; measure the load generator's
ceiling; then for each scenario start the service under the real server, let its workers come
up, drive the open loop (recycling's regime) and the closed loop (throughput), stop it and keep
its log. The recycling-storm variants run closed loop only.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

from postfork.cli.database import selected_database
from postfork.drivers import connect
from postfork.errors import ConfigError, Error
from postfork.install import WarmReport
from postfork.url import DatabaseURL, parse_url
from postfork_tools.bench import analysis, loadgen
from postfork_tools.bench.delay_proxy import ProxyProcess, proxied, proxy_target
from postfork_tools.bench.scenarios import ASGI_ORM, ORM, STORMS, Scenario
from postfork_tools.serve.command import ASGI_SERVERS, ServeOptions
from postfork_tools.serve.runner import ServiceProcess, free_port
from postfork_tools.service.schema import seed_database
from postfork_tools.service.settings import EVENT_LOG_VAR

SETTLE_SECONDS = 1.0  # after the server answers: the other workers finish their start-up
# Before the first measured run, unrecorded: page cache, buffer pool, CPU frequency, the proxy.
SYSTEM_WARMUP = loadgen.LoadSpec(port=0, duration=2.0, connections=4)
# The default open-loop rate, as a share of the capacity the bench measures (the no-recycle
# closed loop, run first): far enough below it that the tail is what recycling costs, not a
# queue. Above the capacity an open loop measures only its own backlog, so the bench refuses.
DEFAULT_LOAD_SHARE = 0.2
HIGH_LOAD_SHARE = 0.5  # above this share of capacity an asked rate gets a warning


class NoCapacity(Error):
    """The reference server answered nothing: there is no capacity to size a load from."""


class OverCapacity(ConfigError):
    """The asked open-loop rate is above what the machine serves with this configuration."""


@dataclass(frozen=True)
class BenchOptions:
    server: str = "uwsgi"
    processes: int = 4
    max_requests: int = 100
    db_delay_ms: float = 1.0
    rate: float = 0.0  # open loop req/s; 0: DEFAULT_LOAD_SHARE of the measured capacity
    duration: float = 60.0  # open loop seconds per scenario
    closed_duration: float = 20.0
    connections: int = 8
    storm_duration: float = 30.0
    storms: bool = True
    orm: bool = False  # also the ORM scenarios (the summary endpoint through SQLAlchemy, Django)
    driver: str | None = None  # the server's default (see ServeOptions)
    database_url: str | None = None
    scenario_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.asgi:  # the storms are the WSGI service's
            object.__setattr__(self, "storms", False)

    @property
    def asgi(self) -> bool:
        return self.server in ASGI_SERVERS

    @property
    def orm_scenarios(self) -> tuple[Scenario, ...]:
        """``--orm``: SQLAlchemy and Django under a WSGI server, Django under an ASGI one."""
        if not self.orm:
            return ()
        return ASGI_ORM if self.asgi else ORM

    def open_rate(self, capacity_rps: float) -> float:
        """The asked rate, else the default share of the capacity the no-recycle closed loop
        measured (the first scenario to run); refuses a rate above that capacity."""
        if not self.rate:
            return round(DEFAULT_LOAD_SHARE * capacity_rps, 1)
        if self.rate > capacity_rps:
            raise OverCapacity(
                f"--rate {self.rate:g} req/s is above the {capacity_rps:.0f} req/s this machine "
                f"served with {self.processes} processes and no recycling (closed loop, "
                f"{self.connections} connections): an open loop above capacity measures only "
                f"its growing queue. Ask for at most {capacity_rps:.0f}, or leave --rate out "
                f"for {DEFAULT_LOAD_SHARE:.0%} of the capacity."
            )
        return self.rate

    @classmethod
    def quick(cls, **overrides: Any) -> BenchOptions:
        """About 2.5 minutes on a 2-core machine (what ``make demo`` runs)."""
        return replace(cls(duration=12.0, closed_duration=4.0, storm_duration=12.0), **overrides)

    def planned_seconds(self, scenarios: int) -> float:
        scenarios += len(self.orm_scenarios)
        per_scenario = self.duration + self.closed_duration + SETTLE_SECONDS + 2.0
        storms = len(STORMS) * (self.storm_duration + SETTLE_SECONDS + 2.0) if self.storms else 0
        return scenarios * per_scenario + storms


Tick = Callable[[str, float], None]  # (what is running, seconds of planned work done)


@dataclass
class ScenarioRun:
    scenario: Scenario
    open_loop: loadgen.LoadResult | None
    closed_loop: loadgen.LoadResult
    warm_reports: list[WarmReport]
    traffic: dict[str, float]  # per request, from the proxy: statements, connections


@contextmanager
def service_database(
    url: DatabaseURL, delay_ms: float
) -> Iterator[tuple[DatabaseURL, dict[str, Any], ProxyProcess | None]]:
    """The URL the service uses (through the proxy when there is a delay), the proxy's
    measured cost, and the proxy (its counters tell each scenario's statements)."""
    if delay_ms <= 0:
        yield url, {"delay_ms": 0.0}, None
        return
    with ProxyProcess(proxy_target(url), delay_ms) as proxy:
        through = proxied(url, proxy.port)
        yield through, validate_proxy(url, through, delay_ms), proxy


def validate_proxy(direct: DatabaseURL, through: DatabaseURL, delay_ms: float) -> dict[str, Any]:
    """What the proxy really adds: a query's round trip and a connect, direct and through it."""

    def costs(url: DatabaseURL) -> tuple[float, float]:
        connects, queries = [], []
        for _ in range(5):
            started = time.perf_counter()
            conn = connect(url, timeout=5)
            connects.append(time.perf_counter() - started)
            try:
                cursor = conn.cursor()
                for _ in range(40):
                    started = time.perf_counter()
                    cursor.execute("SELECT 1")
                    cursor.fetchall()
                    queries.append(time.perf_counter() - started)
            finally:
                conn.close()
        return statistics.median(queries) * 1e3, statistics.median(connects) * 1e3

    query_direct, connect_direct = costs(direct)
    query_proxied, connect_proxied = costs(through)
    added = query_proxied - query_direct
    return {
        "delay_ms": delay_ms,
        "expected_round_trip_ms": 2 * delay_ms,
        "added_round_trip_ms": added,
        "query_direct_ms": query_direct,
        "query_proxied_ms": query_proxied,
        "connect_direct_ms": connect_direct,
        "connect_proxied_ms": connect_proxied,
        "connect_round_trips": (connect_proxied - connect_direct) / (2 * delay_ms),
        "within_tolerance": abs(added - 2 * delay_ms) <= max(0.5, 0.25 * delay_ms),
    }


class Suite:
    def __init__(self, options: BenchOptions, scenarios: tuple[Scenario, ...], tick: Tick):
        self.options = options
        self.scenarios = scenarios
        self._tick = tick
        self._done = 0.0  # planned seconds of work finished
        self._system_warm = False
        self._proxy: ProxyProcess | None = None
        self.capacity_rps = 0.0  # the no-recycle closed loop's throughput, measured first
        self.rate = 0.0  # the open loop's rate, from the capacity unless asked
        # sorted latencies per run, for the plot: {panel: {name: [ms]}}
        self.curves: dict[str, dict[str, list[float]]] = {
            "open loop": {},
            "closed loop": {},
            "ORMs, open loop": {},
        }

    def run(self) -> dict[str, Any]:
        opts = self.options
        report: dict[str, Any] = {
            "schema": "postfork-bench/1",
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": "postfork " + " ".join(_redacted(sys.argv[1:])) if sys.argv else "",
            "machine": machine(),
            "settings": {**asdict(opts), "database_url": None},
        }
        with selected_database(opts.database_url) as (url, origin):
            report["database"] = {"url": url.redacted(), "origin": origin}
            self._tick("seeding the database", self._done)
            seed_database(url)
            with service_database(url, opts.db_delay_ms) as (service_url, proxy, process):
                report["proxy"] = proxy
                self._proxy = process
                self._tick("measuring the load generator's ceiling", self._done)
                report["generator"] = {"ceiling_rps": loadgen.ceiling()}
                runs = [
                    self._run(service_url, scenario, storm=False) for scenario in self.scenarios
                ]
                orms = [self._run(service_url, s, storm=False) for s in opts.orm_scenarios]
                storms = (
                    [self._run(service_url, s, storm=True) for s in STORMS] if opts.storms else []
                )
        report["scenarios"] = {run.scenario.name: self._scenario_figures(run) for run in runs}
        if orms:
            report["orm"] = {
                run.scenario.name: self._scenario_figures(run, "ORMs, open loop") for run in orms
            }
        report["storms"] = {run.scenario.name: self._storm_figures(run) for run in storms}
        report["settings"]["open_rate"] = self.rate
        report["load"] = {
            "capacity_rps": self.capacity_rps,
            "open_rate": self.rate,
            "share_of_capacity": self.rate / self.capacity_rps if self.capacity_rps else None,
            "chosen": "asked (--rate)" if opts.rate else f"default: {DEFAULT_LOAD_SHARE:.0%}",
        }
        report["generator"].update(generator_load(runs, report["generator"]["ceiling_rps"]))
        return report

    # -- one server run ------------------------------------------------------------------

    def _run(self, url: DatabaseURL, scenario: Scenario, *, storm: bool) -> ScenarioRun:
        opts = self.options
        options = ServeOptions(
            server=opts.server,
            processes=opts.processes,
            max_requests=opts.max_requests if scenario.recycle else 0,
            bind=f"127.0.0.1:{free_port()}",
            connect=scenario.connect,
            driver=opts.driver,
            extra=scenario.extra(opts.server),
        )
        label = scenario.name
        self._tick(f"{label}: starting {opts.server}", self._done)
        with tempfile.TemporaryDirectory(prefix="postfork-bench-") as scratch:
            events = os.path.join(scratch, "events.jsonl")
            env = {**scenario.env, EVENT_LOG_VAR: events}
            open_loop, closed_loop, traffic = self._drive(url, options, env, label, storm)
            reports = analysis.read_warm_reports(_lines(events))
        return ScenarioRun(scenario, open_loop, closed_loop, reports, traffic)

    def _drive(
        self, url: DatabaseURL, options: ServeOptions, env: dict[str, str], label: str, storm: bool
    ) -> tuple[loadgen.LoadResult | None, loadgen.LoadResult, dict[str, float]]:
        opts = self.options
        with ServiceProcess(url, options, env=env) as service:
            time.sleep(SETTLE_SECONDS)
            if not self._system_warm:  # the first server also warms the proxy and the database
                loadgen.run(replace(SYSTEM_WARMUP, port=service.port))
                self._system_warm = True
            self._done += SETTLE_SECONDS + 2.0
            before = self._proxy.sample() if self._proxy is not None else None
            duration = opts.storm_duration if storm else opts.closed_duration
            closed = loadgen.LoadSpec(
                port=service.port, duration=duration, connections=opts.connections
            )
            open_loop = closed_loop = None
            if not self.capacity_rps:  # the first scenario (no-recycle): its closed loop first
                closed_loop = self._load(f"{label}: closed loop (capacity)", closed)
                self.capacity_rps = capacity_rps(closed_loop, label)
                self.rate = opts.open_rate(self.capacity_rps)
            if not storm:
                spec = loadgen.LoadSpec(port=service.port, duration=opts.duration, rate=self.rate)
                open_loop = self._load(f"{label}: open loop", spec)
            if closed_loop is None:
                closed_loop = self._load(f"{label}: closed loop", closed)
            after = self._proxy.sample() if self._proxy is not None else None
        served = len(closed_loop.samples) + (len(open_loop.samples) if open_loop else 0)
        return open_loop, closed_loop, per_request(before, after, served)

    def _load(self, label: str, spec: loadgen.LoadSpec) -> loadgen.LoadResult:
        base = self._done
        result = loadgen.run(
            spec, lambda elapsed: self._tick(label, base + min(elapsed, spec.duration))
        )
        self._done = base + spec.duration
        return result

    # -- figures -------------------------------------------------------------------------

    def _scenario_figures(self, run: ScenarioRun, panel: str = "open loop") -> dict[str, Any]:
        assert run.open_loop is not None
        figures = analysis.summarize(run.open_loop, self.options.processes)
        figures["summary"] = run.scenario.summary
        figures["closed_loop"] = closed_figures(run.closed_loop)
        figures["send_lag_p99_ms"] = send_lag_p99_ms(run.open_loop)
        if run.warm_reports:  # warm, postfork: respawns timed at a load the machine holds
            exact = self.options.max_requests  # the recycling scenarios recycle exactly there
            figures.update(self._gap_figures(run.open_loop, run.warm_reports, exact))
        figures.update(run.traffic)
        self.curves[panel][run.scenario.name] = sorted(analysis.latencies_ms(run.open_loop.samples))
        return figures

    def _storm_figures(self, run: ScenarioRun) -> dict[str, Any]:
        figures = closed_figures(run.closed_loop)
        self.curves["closed loop"][run.scenario.name] = sorted(
            analysis.latencies_ms(run.closed_loop.samples)
        )
        workers = analysis.Workers.of(run.closed_loop.samples)
        figures["summary"] = run.scenario.summary
        figures["respawns"] = len(workers.born_during_run(self.options.processes))
        figures.update(self._gap_figures(run.closed_loop, run.warm_reports))
        return figures

    def _gap_figures(
        self, result: loadgen.LoadResult, reports: list[WarmReport], max_requests: int = 0
    ) -> dict[str, float]:
        gaps = analysis.respawn_gaps(
            result, self.options.processes, reports, max_requests=max_requests
        )
        figures = {}
        for name, values in (("to_fork", gaps.to_fork), ("to_ready", gaps.to_ready)):
            figures[f"respawn_gap_{name}_p50_ms"] = analysis.percentile(values, 50.0)
            figures[f"respawn_gap_{name}_p99_ms"] = analysis.percentile(values, 99.0)
            figures[f"respawn_gap_{name}_max_ms"] = values[-1] if values else math.nan
        return figures


def capacity_rps(result: loadgen.LoadResult, label: str) -> float:
    """Answers per second of a closed loop, counting only the ones that succeeded."""
    answered = sum(1 for status in result.samples.status if status == 200)
    if not answered or result.elapsed <= 0:
        raise NoCapacity(
            f"{label}: the server answered no request with 200 in its {result.elapsed:.0f} s "
            "closed loop; nothing to measure (run `postfork serve` with the same options to "
            "see its log)"
        )
    return answered / result.elapsed


def per_request(
    before: dict[str, Any] | None, after: dict[str, Any] | None, served: int
) -> dict[str, float]:
    """What the database saw per request served, from the proxy's counters: statements (one
    per client write: a query, a ping, a rollback) and new connections."""
    if before is None or after is None or not served:
        return {}
    return {
        "statements_per_request": (after["client_chunks"] - before["client_chunks"]) / served,
        "connections_per_request": (after["connections"] - before["connections"]) / served,
    }


def closed_figures(result: loadgen.LoadResult) -> dict[str, Any]:
    samples = result.samples
    ordered = sorted(analysis.latencies_ms(samples))
    return {
        "requests": len(samples),
        "errors": sum(1 for status in samples.status if status != 200),
        "dropped": analysis.dropped(samples),
        "rps": len(samples) / result.elapsed if result.elapsed > 0 else 0.0,
        "p50_ms": analysis.percentile(ordered, 50.0),
        "p99_ms": analysis.percentile(ordered, 99.0),
        "max_ms": ordered[-1] if ordered else float("nan"),
    }


def send_lag_p99_ms(result: loadgen.LoadResult) -> float:
    samples = result.samples
    lags = sorted((sent - due) * 1e3 for sent, due in zip(samples.sent, samples.due, strict=True))
    return analysis.percentile(lags, 99.0)


def generator_load(runs: list[ScenarioRun], ceiling_rps: float) -> dict[str, Any]:
    """How close the closed loops came to the generator's own ceiling."""
    peak = max((len(r.closed_loop.samples) / r.closed_loop.elapsed for r in runs), default=0.0)
    return {"peak_closed_loop_rps": peak, "peak_share_of_ceiling": peak / ceiling_rps}


def _lines(path: str) -> list[str]:
    """The lines of a file the service may not have written (no warm-up in lazy mode)."""
    try:
        with open(path) as handle:
            return handle.readlines()
    except FileNotFoundError:
        return []


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def _redacted(argv: list[str]) -> list[str]:
    """The command line as recorded in the JSON: a database URL's password never."""
    shown = []
    for arg in argv:
        flag, equals, value = arg.rpartition("=") if arg.startswith("--") else ("", "", arg)
        if "://" in value:
            try:
                value = parse_url(value).redacted()
            except ConfigError:
                value = "<a malformed database URL>"
        shown.append(f"{flag}{equals}{value}")
    return shown
