"""Prometheus metrics for a pre-fork server, aggregated over all its workers (WSGI or ASGI:
``postfork.wsgi.MetricsEndpoint`` and ``postfork.asgi.MetricsEndpoint`` answer the scrape).

prometheus_client's multiprocess mode: every worker writes its samples to memory-mapped files
in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics``, answered by any worker, reads all of them. A
recycled worker's counters and histograms are merged into an archive once its life is over
(``metrics_files``: off the request path, safe against a scrape at the same moment and against
pid reuse), so totals never go backwards and the directory stays small; its live gauges (idle,
in use) are removed when it exits.

The pool's counters come from its events as they happen (a connect, a checkout, a wait, a
discard); the gauges are set after each response when they changed.

``PROMETHEUS_MULTIPROC_DIR`` must be set before prometheus_client is imported and be shared
by all workers: ``postfork serve`` sets a fresh one; :func:`ensure_multiprocess_dir` creates
one in the process that loads the app (the uWSGI master or gunicorn arbiter with preloading,
whose workers inherit it).
"""

from __future__ import annotations

import glob
import logging
import os
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import environment, fork
from ..errors import MissingExtra
from ..pool import DISCARD_REASONS, DiscardReason, LeaseBase, Slot
from ..pool.core import PoolCore
from ..servers import Role, detect
from ..topology import Cluster, Verdict
from ..upkeep import upkeep
from . import metrics_files
from .timing import Request, RequestTiming

log = logging.getLogger("postfork.metrics")

METRICS_PATH = "/metrics"
# The directory as a whole is swept about this often: each of N writers sweeps every N times
# this (jittered), so the cost stays the same at 2 workers or 32, and ended lives wait about
# this long to be merged. Never on the exit path: a dying worker's CPU is its replacement's wait.
SWEEP_SECONDS = 0.25
MAX_SWEEP_SECONDS = 30.0
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


def sweep_period(writers: int) -> float:
    """Seconds until this worker's next sweep when ``writers`` lives have files here."""
    return min(MAX_SWEEP_SECONDS, SWEEP_SECONDS * max(1, writers) * random.uniform(0.5, 1.5))


def ensure_multiprocess_dir() -> str:
    """The shared directory, created (and exported to children) if the server set none."""
    path = environment.metrics_dir()
    if not path:
        path = tempfile.mkdtemp(prefix=f"postfork-metrics-{os.getpid()}-")
        environment.export(environment.METRICS_DIR_VAR, path)
        log.info(
            "%s not set: using %s (set it for lazy-apps servers)", environment.METRICS_DIR_VAR, path
        )
    os.makedirs(path, exist_ok=True)
    return path


def _prometheus() -> Any:
    try:
        import prometheus_client
        from prometheus_client import exposition, multiprocess
    except ImportError as exc:
        raise MissingExtra("prometheus_client", "metrics", hint="or POSTFORK_METRICS=off") from exc
    return prometheus_client, exposition, multiprocess


class ServiceMetrics:
    """Request latency by whether the request paid a database connect, the pool's counters and
    gauges, and the workers started. ``observe`` is a TimingMiddleware observer.

    Given a :class:`~postfork.Cluster`, the pool series are totals over its members, and
    ``postfork_member_*`` series labelled by member and role tell them apart: checkouts,
    connects, times left, whether it serves and its lag (as this process's checks last saw)."""

    def __init__(self, pool: PoolCore | Cluster) -> None:
        self.directory = ensure_multiprocess_dir()
        # Imported here, after the directory is set (prometheus_client reads it at import), and
        # all at once: a first import in a dying worker's exit hook cost it 3 ms.
        client, self._exposition, self._multiprocess = _prometheus()
        metrics_files.use_life_ids()  # before any metric exists: files named by worker life
        self._registry_class = client.CollectorRegistry
        Counter, Gauge, Histogram = client.Counter, client.Gauge, client.Histogram
        self.pool = pool
        self.latency = Histogram(
            "postfork_request_duration_seconds",
            "Request latency in the worker, by whether the request paid a database connect",
            ["paid_connect"],
            buckets=LATENCY_BUCKETS,
        )
        self.connects = Counter("postfork_pool_connects", "Connections opened")
        self.connect_seconds = Counter("postfork_pool_connect_seconds", "Seconds spent connecting")
        self.connect_errors = Counter("postfork_pool_connect_errors", "Connects that failed")
        self.checkouts = Counter("postfork_pool_checkouts", "Connections handed out")
        self.waits = Counter("postfork_pool_waits", "Checkouts that waited for a busy pool")
        self.wait_seconds = Counter("postfork_pool_wait_seconds", "Seconds checkouts waited")
        self.timeouts = Counter("postfork_pool_timeouts", "Checkouts that timed out")
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
        self._discards = {reason: self.discards.labels(reason=reason) for reason in DISCARD_REASONS}
        self._gauges = fork.PerProcess(lambda: [-1, -1])  # last values set by this process
        self._started = fork.OncePerProcess()  # counted in workers_started
        self._sweeping = fork.OncePerProcess()  # the compaction thread, one per worker
        for member_pool in pool.member_pools() if isinstance(pool, Cluster) else [pool]:
            self._listen(member_pool)
        self._members = MemberMetrics(client, pool) if isinstance(pool, Cluster) else None
        fork.add_exit_listener(self)
        fork.add_listener(self)
        if detect()[1] is not Role.MASTER:  # the app loads in the worker (or a spawned one)
            self._worker_started()

    def _listen(self, pool: PoolCore) -> None:
        events = pool.events
        events.listen("connect", self._on_connect)
        events.listen("connect_failed", lambda pool, error: self.connect_errors.inc())
        events.listen("checkout", self._on_checkout)
        events.listen("timeout", self._on_timeout)
        events.listen("discard", self._on_discard)

    def _on_connect(self, pool: PoolCore, slot: Slot) -> None:
        self.connects.inc()
        self.connect_seconds.inc(slot.connect_seconds)

    def _on_checkout(self, pool: PoolCore, lease: LeaseBase) -> None:
        self.checkouts.inc()
        if lease.wait_seconds > 0.0:
            self.waits.inc()
            self.wait_seconds.inc(lease.wait_seconds)

    def _on_timeout(self, pool: PoolCore, waited: float) -> None:
        self.waits.inc()
        self.timeouts.inc()

    def _on_discard(self, pool: PoolCore, slot: Slot, reason: DiscardReason) -> None:
        self._discards[reason.value].inc()

    def after_fork(self) -> None:
        """Open this worker's metrics files before its first request, not during it: creating
        and mapping them costs milliseconds (measured: a new worker's first request went from
        1.09x to 1.7x the steady median while that happened on the request path)."""
        self._worker_started()

    def _worker_started(self) -> None:
        if self._started.first():
            self.workers.inc()  # the first write here creates all of this process's files
            self._set_gauges()
            self._start_sweeping()

    def _start_sweeping(self) -> None:
        """Each worker's timer thread (postfork's one background thread there) merges ended
        workers' files, so the directory stays small even when nobody scrapes (never in a
        master: not forked)."""
        if not self._sweeping.first():
            return

        def period() -> float:
            return sweep_period(metrics_files.lives(self.directory)[1])

        upkeep.every(
            f"metrics sweep of {self.directory}",
            period,
            lambda: metrics_files.compact(self.directory),
        )

    def observe(
        self, request: Request, timing: RequestTiming, status: int, seconds: float
    ) -> None:
        self._worker_started()  # once per process: a worker forked without a hook we saw
        if request.path != METRICS_PATH:
            (self._paid if timing.paid_connect else self._unpaid).observe(seconds)
        self._set_gauges()

    def _set_gauges(self) -> None:
        if self._members is not None:
            self._members.update()
        last = self._gauges.get()
        idle, in_use = self.pool.counts()
        if idle != last[0]:
            self.idle.set(idle)
            last[0] = idle
        if in_use != last[1]:
            self.in_use.set(in_use)
            last[1] = in_use

    def at_exit(self) -> None:
        """A dying worker's live gauges go; its counters stay (totals never go backwards) until
        a sweep or a scrape merges them. The merge is done here only when the sweeps fell
        behind (workers that live shorter than a sweep's delay): at 32 workers a merge at every
        exit cost ~6 ms of CPU and ~30 ms of waiting for one, all added to the respawn gap.
        Exit hooks may interrupt a pool call (see Pool._close_at_exit): nothing here takes its
        lock."""
        metrics_files.remove_live_gauges(self.directory, metrics_files.life_id())
        if metrics_files.behind(self.directory):
            try:  # no wait: a scrape or a sweep in progress merges them anyway
                metrics_files.compact(self.directory)
            except Exception as exc:
                log.warning("metrics compaction at exit failed: %r", exc)

    @property
    def content_type(self) -> str:
        """The scrape's ``Content-Type`` (Prometheus text format)."""
        return str(self._exposition.CONTENT_TYPE_LATEST)

    def render(self) -> bytes:
        self._set_gauges()
        # after any sweep in progress (they take milliseconds): the scrape reads a directory
        # that holds no ended life's files
        metrics_files.compact(self.directory, wait=True)
        registry = self._registry_class()
        _SizedFilesCollector(self._multiprocess, self.directory, registry)
        return self._collect(registry)

    def _collect(self, registry: Any) -> bytes:
        with metrics_files.scrape_lock(self.directory):
            return bytes(self._exposition.generate_latest(registry))


class _SizedFilesCollector:
    """prometheus_client's multiprocess collector over the files that hold data. A worker
    creates its file empty and sizes it a moment later; read in between (a scrape racing a
    respawn), it has no header and the whole scrape failed (struct.error). An empty file holds
    no sample yet, so it is left out: no retry, no timing to win."""

    def __init__(self, multiprocess: Any, directory: str, registry: Any) -> None:
        self._merge = multiprocess.MultiProcessCollector.merge
        self.directory = directory
        registry.register(self)

    def collect(self) -> Any:
        files = [f for f in glob.glob(os.path.join(self.directory, "*.db")) if _has_data(f)]
        return self._merge(files, accumulate=True)


def _has_data(path: str) -> bool:
    try:
        return os.stat(path).st_size > 0
    except FileNotFoundError:  # a live gauge's file, removed since the listing
        return False


class MemberMetrics:
    """The ``postfork_member_*`` series of a cluster, labelled by member and role."""

    def __init__(self, client: Any, cluster: Cluster) -> None:
        labels = ["member", "role"]
        self.cluster = cluster
        checkouts = client.Counter(
            "postfork_member_checkouts", "Connections handed out, by member", labels
        )
        connects = client.Counter("postfork_member_connects", "Connections opened", labels)
        left = client.Counter(
            "postfork_member_left", "Times a worker took the member out of rotation", labels
        )
        up = client.Gauge(
            "postfork_member_up",
            "1 while the member serves (0 if any live worker has left it)",
            labels,
            multiprocess_mode="livemin",
        )
        lag = client.Gauge(
            "postfork_member_lag_seconds",
            "Replication lag at the last check (largest over live workers)",
            labels,
            multiprocess_mode="livemax",
        )
        self._families = (up, lag, left)
        for member in cluster.members:
            names = {"member": member.name, "role": member.role.value}
            member.pool.events.listen("checkout", _counting(checkouts.labels(**names)))
            member.pool.events.listen("connect", _counting(connects.labels(**names)))
        # per process: each member's (up, lag, left) series, made at its first update there (a
        # series made in a master writes 0 in the master's file: a live 0 that livemin would
        # report forever), and what was last written: (verdict, times left counted)
        self._written: fork.PerProcess[dict[str, _Written]] = fork.PerProcess(dict)

    def update(self) -> None:
        """After each response: what changed since the last one (a check's verdict, a member
        left) into the series; nothing is written when nothing changed."""
        written = self._written.get()
        for member in self.cluster.members:
            last = written.get(member.name)
            if last is None:
                names = {"member": member.name, "role": member.role.value}
                last = _Written([family.labels(**names) for family in self._families])
                written[member.name] = last
            elif member.verdict == last.verdict and member.left == last.left:
                continue
            up, lag, left = last.series
            up.set(1 if member.serves else 0)
            if member.verdict.lag is not None:
                lag.set(member.verdict.lag)
            if member.left > last.left:
                left.inc(member.left - last.left)
            last.verdict, last.left = member.verdict, member.left


@dataclass
class _Written:
    series: list[Any]  # up, lag, left
    verdict: Verdict | None = None
    left: int = 0


def _counting(child: Any) -> Callable[..., None]:
    def count(*_event: Any) -> None:
        child.inc()

    return count
