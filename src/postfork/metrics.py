"""Prometheus metrics for a pre-fork server, aggregated over all its workers.

prometheus_client's multiprocess mode: every worker writes its samples to memory-mapped files
in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics``, answered by any worker, reads all of them. A
recycled worker's counters and histograms stay in its files, so totals never go backwards;
its live gauges (idle, in use) are removed when it exits.

``PROMETHEUS_MULTIPROC_DIR`` must be set before prometheus_client is imported and be shared
by all workers: ``postfork serve`` sets a fresh one; :func:`ensure_multiprocess_dir` creates
one in the process that loads the app (the uWSGI master or gunicorn arbiter with preloading,
whose workers inherit it).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import _fork, _servers
from ._pool import DISCARD_REASONS
from ._timing import RequestTiming

if TYPE_CHECKING:
    from ._pool import Pool

log = logging.getLogger("postfork.metrics")

MULTIPROC_VAR = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
_POOL_COUNTERS = (
    ("connects", "postfork_pool_connects_total", "Connections opened"),
    ("connect_seconds", "postfork_pool_connect_seconds_total", "Seconds spent connecting"),
    ("connect_errors", "postfork_pool_connect_errors_total", "Connects that failed"),
    ("checkouts", "postfork_pool_checkouts_total", "Connections handed out"),
    ("waits", "postfork_pool_waits_total", "Checkouts that waited for a busy pool"),
    ("wait_seconds", "postfork_pool_wait_seconds_total", "Seconds checkouts waited"),
    ("timeouts", "postfork_pool_timeouts_total", "Checkouts that timed out"),
)


def ensure_multiprocess_dir() -> str:
    """The shared directory, created (and exported to children) if the server set none."""
    path = os.environ.get(MULTIPROC_VAR, "").strip()
    if not path:
        path = tempfile.mkdtemp(prefix=f"postfork-metrics-{os.getpid()}-")
        os.environ[MULTIPROC_VAR] = path
        log.info("%s not set: using %s (set it for lazy-apps servers)", MULTIPROC_VAR, path)
    os.makedirs(path, exist_ok=True)
    return path


class ServiceMetrics:
    """Request latency by whether the request paid a connect, the pool's counters and gauges,
    and the workers that served requests. ``observe`` is a TimingMiddleware observer."""

    def __init__(self, pool: Pool) -> None:
        ensure_multiprocess_dir()
        # Imported here, after the directory is set (prometheus_client reads it at import), and
        # all at once: a first import in a dying worker's exit hook cost it 3 ms.
        from prometheus_client import Counter, Gauge, Histogram, exposition, multiprocess

        self._multiprocess, self._exposition = multiprocess, exposition

        self.pool = pool
        self.latency = Histogram(
            "postfork_request_duration_seconds",
            "Request latency in the worker, by whether the request paid a database connect",
            ["paid_connect"],
            buckets=LATENCY_BUCKETS,
        )
        self.counters = {
            key: Counter(name.removesuffix("_total"), text) for key, name, text in _POOL_COUNTERS
        }
        self.discards = Counter(
            "postfork_pool_discards", "Connections discarded, by reason", ["reason"]
        )
        self.idle = Gauge(
            "postfork_pool_idle_connections", "Idle pooled connections", multiprocess_mode="livesum"
        )
        self.in_use = Gauge(
            "postfork_pool_in_use_connections",
            "Pooled connections in use",
            multiprocess_mode="livesum",
        )
        self.workers = Counter(
            "postfork_workers_started",
            "Worker processes started (minus the configured processes: respawns)",
        )
        # every series exists from the start, at 0
        self._paid = self.latency.labels(paid_connect="true")
        self._unpaid = self.latency.labels(paid_connect="false")
        self._requests = 0  # observed in this process (recycling tells an orderly exit)
        for reason in DISCARD_REASONS:
            self.discards.labels(reason=reason)
        self._pid = 0
        self._last: dict[str, float] = {}
        _fork.add_exit_listener(self)
        _fork.add_listener(self)
        if _servers.detect()[1] is _servers.Role.WORKER:  # the app loads in the worker itself
            self.after_fork()

    def after_fork(self) -> None:
        """Open this worker's metrics files before its first request, not during it: creating
        and mapping them costs milliseconds (measured: a new worker's first request went from
        1.09x to 1.7x the steady median while that happened on the request path)."""
        self.sync()

    def observe(
        self, environ: dict[str, Any], timing: RequestTiming, status: int, seconds: float
    ) -> None:
        if self._pid != os.getpid():
            self.sync()  # a new worker: start its own deltas, count it
        self._requests += 1
        if environ.get("PATH_INFO") == METRICS_PATH:
            return
        (self._paid if timing.paid_connect else self._unpaid).observe(seconds)
        self.sync()

    def sync(self) -> None:
        """Add what the pool counted since the last sync (the pool counts per process): after
        every request, on a scrape and at an orderly exit. Only what changed is written."""
        if self._pid != os.getpid():
            self._pid, self._last, self._requests = os.getpid(), {}, 0
            self.workers.inc()
        stats = self.pool.stats()
        for key, counter in self.counters.items():
            delta = stats[key] - self._last.get(key, 0)
            if delta > 0:
                counter.inc(delta)
            self._last[key] = stats[key]
        for reason, count in stats["discards"].items():
            key = f"discards:{reason}"
            delta = count - self._last.get(key, 0)
            if delta > 0:
                self.discards.labels(reason=reason).inc(delta)
            self._last[key] = count
        for key, gauge in (("idle", self.idle), ("in_use", self.in_use)):
            if stats[key] != self._last.get(key):
                gauge.set(stats[key])
                self._last[key] = stats[key]

    def at_exit(self) -> None:
        """A dying worker's last counts land and its live gauges go; its counters stay (totals
        never go backwards). Exit hooks may interrupt a pool call (see Pool._close_at_exit):
        sync only when the exit is orderly (a stopped worker may lose its last request's
        pool counts)."""
        if self._pid == os.getpid() and not _servers.exit_hooks_may_interrupt(self._requests):
            self.sync()
        self._multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry

        self.sync()
        registry = CollectorRegistry()
        self._multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return bytes(self._exposition.generate_latest(registry))


class MetricsEndpoint:
    """Answers ``GET /metrics`` in Prometheus text format; passes everything else on."""

    def __init__(
        self,
        app: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]],
        metrics: ServiceMetrics,
    ) -> None:
        self.app = app
        self.metrics = metrics

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            return self.app(environ, start_response)
        body = self.metrics.render()
        content_type = self.metrics._exposition.CONTENT_TYPE_LATEST
        start_response(
            "200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        )
        return [body]
