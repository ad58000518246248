"""Pool overhead, side by side in one run: checkout, SELECT 1, return.

Variants (all mysqlclient, same connect arguments): one raw connection reused (the floor),
postfork.Pool, a read routed by postfork.Cluster, SQLAlchemy QueuePool with and without
pool_pre_ping, SQLAlchemy on postfork's pool (PostforkPool), DBUtils PooledDB with its
defaults. With ``--asyncio``, the asyncio variants instead: a raw asyncmy connection (the
floor), postfork.AsyncPool, SQLAlchemy's AsyncAdaptedQueuePool with and without pre-ping and
SQLAlchemy's async engine on postfork (the checkout under ``engine.raw_connection()``), and on
aiomysql: its raw connection (that driver's floor), postfork.AsyncPool, aiomysql's own pool.
Each asyncio iteration is awaited in one event loop that runs a whole batch. Networks: the
database's own socket, and a delay proxy adding ~1 ms each way.

Three measures, because wall clock on the local socket is at the mercy of the scheduler on this
shared 2-core VM (the same SELECT 1 takes 13 or 70 us depending on where the server's thread
wakes up):

- instructions per iteration in this process, counted by callgrind (exact and repeatable: the
  pool's in-process cost, with the raw connection's as the floor; needs valgrind);
- wall clock on the local socket, all variants open at once, interleaved rounds, median;
- wall clock and round trips through the delay proxy; round trips are counted by the proxy
  (client chunks / iterations): SELECT 1 is one, anything above is what the pool added.

    .venv/bin/python benchmarks/pool_overhead.py [--iterations 20000] [--json PATH]
    .venv/bin/python benchmarks/pool_overhead.py --asyncio [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from postfork import DatabaseURL, Pool, parse_url
from postfork.cli.database import selected_database
from postfork.drivers import load_driver
from postfork_tools.bench.delay_proxy import ProxyProcess, proxied, proxy_target

Iteration = Callable[[], Any]  # a plain function, or a coroutine function (asyncio variants)
Variant = Callable[[DatabaseURL], AbstractContextManager[Iteration]]
LOOP = asyncio.new_event_loop()  # every asyncio variant's, for the whole run
WARMUP = 500
CHILD_URL = "POSTFORK_POOL_OVERHEAD_URL"
CALLGRIND_SHORT, CALLGRIND_LONG = 500, 2500
ROUNDS = 10


def select_one(conn: Any) -> None:
    cursor = conn.cursor()
    cursor.execute("SELECT 1")
    cursor.fetchall()
    cursor.close()


def creator(url: DatabaseURL) -> Callable[[], Any]:
    """Stock ``MySQLdb.connect`` with the connect arguments postfork's adapter would use: the
    floor and the other pools get mysqlclient as it ships (postfork's adapter subclasses its
    Connection; that cost is postfork's to carry, so it shows in postfork's rows)."""
    import MySQLdb

    kwargs = load_driver("mysqlclient").connect_kwargs(url, 5, False)
    return lambda: MySQLdb.connect(**kwargs)


@contextmanager
def raw_connection(url: DatabaseURL) -> Iterator[Iteration]:
    conn = creator(url)()
    yield lambda: select_one(conn)
    conn.close()


@contextmanager
def postfork_pool(url: DatabaseURL) -> Iterator[Iteration]:
    with Pool(url, min_idle=1, max_size=1) as pool:
        pool.warm()

        def iteration() -> None:
            with pool.connection() as conn:
                select_one(conn)

        yield iteration


@contextmanager
def cluster_reader(url: DatabaseURL) -> Iterator[Iteration]:
    """A read routed by postfork.Cluster: the routing decision (a tuple and a counter, from
    the last check's verdicts) and the routed lease around the member pool's lease. One member
    judged serving, as a check would leave it; the checks themselves run in maintain(), off
    this path (never called here)."""
    from postfork import Cluster
    from postfork.topology import Health, Verdict

    cluster = Cluster(galera=[url], min_idle=1, max_size=1)
    cluster.members[0].set(Verdict(Health.UP))
    cluster._reroute()
    cluster.members[0].pool.warm()

    def iteration() -> None:
        with cluster.reader() as conn:
            select_one(conn)

    yield iteration
    cluster.close()


def sqlalchemy_pool(pre_ping: bool) -> Variant:
    @contextmanager
    def variant(url: DatabaseURL) -> Iterator[Iteration]:
        from sqlalchemy import create_engine

        engine = create_engine(
            "mysql+mysqldb://",
            creator=creator(url),
            pool_size=1,
            max_overflow=0,
            pool_pre_ping=pre_ping,
        )

        def iteration() -> None:
            conn = engine.raw_connection()
            select_one(conn)
            conn.close()  # back to the pool (reset on return: rollback)

        yield iteration
        engine.dispose()

    return variant


@contextmanager
def sqlalchemy_on_postfork(url: DatabaseURL) -> Iterator[Iteration]:
    """The same engine checkout as QueuePool's, on postfork's pool."""
    from sqlalchemy import create_engine

    from postfork.sqlalchemy import PostforkPool, engine_url

    engine = create_engine(engine_url(url), poolclass=PostforkPool, pool_size=1, min_idle=1)
    engine.pool.postfork_pool.warm()  # type: ignore[attr-defined]

    def iteration() -> None:
        conn = engine.raw_connection()
        select_one(conn)
        conn.close()  # back to the pool (its reset: the rollback, sent without waiting)

    yield iteration
    engine.dispose()


@contextmanager
def dbutils_pool(url: DatabaseURL) -> Iterator[Iteration]:
    from dbutils.pooled_db import PooledDB  # type: ignore[import-untyped]

    pool = PooledDB(creator(url), mincached=1, maxconnections=1)

    def iteration() -> None:
        conn = pool.connection()
        select_one(conn)
        conn.close()

    yield iteration
    pool.close()


VARIANTS: dict[str, Variant] = {
    "raw connection (floor)": raw_connection,
    "postfork.Pool": postfork_pool,
    "postfork.Cluster reader": cluster_reader,
    "SQLAlchemy QueuePool": sqlalchemy_pool(pre_ping=False),
    "SQLAlchemy QueuePool + pre_ping": sqlalchemy_pool(pre_ping=True),
    "SQLAlchemy on postfork": sqlalchemy_on_postfork,
    "DBUtils PooledDB (defaults)": dbutils_pool,
}


def batch(iteration: Iteration) -> Callable[[int], None]:
    """``run(n)``: n iterations; an asyncio variant's, awaited in LOOP within one run."""
    if not inspect.iscoroutinefunction(iteration):

        def run(count: int) -> None:
            for _ in range(count):
                iteration()

        return run

    async def many(count: int) -> None:
        for _ in range(count):
            await iteration()

    return lambda count: LOOP.run_until_complete(many(count))


async def select_one_async(conn: Any) -> None:
    cursor = conn.cursor()
    if inspect.isawaitable(cursor):  # aiomysql's cursor() is awaited
        cursor = await cursor
    await cursor.execute("SELECT 1")
    await cursor.fetchall()
    await cursor.close()


def async_connect_args(url: DatabaseURL, driver: str) -> dict[str, Any]:
    from postfork.drivers import load_async_driver

    return load_async_driver(driver).connect_arguments(url, 5, False, None)


def raw_async(driver: str) -> Variant:
    @contextmanager
    def variant(url: DatabaseURL) -> Iterator[Iteration]:
        from postfork.drivers import load_async_driver

        adapter = load_async_driver(driver)
        conn = LOOP.run_until_complete(adapter.connect(url, connect_timeout=5, autocommit=False))

        async def iteration() -> None:
            await select_one_async(conn)

        yield iteration
        LOOP.run_until_complete(adapter.close(conn))

    return variant


def postfork_async_pool(driver: str) -> Variant:
    @contextmanager
    def variant(url: DatabaseURL) -> Iterator[Iteration]:
        from postfork import AsyncPool

        pool = AsyncPool(url, driver=driver, min_idle=1, max_size=1)
        LOOP.run_until_complete(pool.open())

        async def iteration() -> None:
            async with pool.connection() as conn:
                await select_one_async(conn)

        yield iteration
        LOOP.run_until_complete(pool.close())

    return variant


def sqlalchemy_async(pre_ping: bool | None) -> Variant:
    """SQLAlchemy's async engine at the pool's level: ``raw_connection()`` checks out, its
    ``close()`` (in SQLAlchemy's greenlet: the reset awaits) returns. ``pre_ping=None``: on
    postfork's pool (AsyncPostforkPool)."""

    @contextmanager
    def variant(url: DatabaseURL) -> Iterator[Iteration]:
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.util.concurrency import greenlet_spawn

        from postfork.sqlalchemy import AsyncPostforkPool, engine_url

        options: dict[str, Any] = {"pool_size": 1, "max_overflow": 0}
        if pre_ping is None:
            options.update(poolclass=AsyncPostforkPool, min_idle=1)
        else:
            options["pool_pre_ping"] = pre_ping
        engine = create_async_engine(engine_url(url, "asyncmy"), **options)
        if pre_ping is None:
            LOOP.run_until_complete(engine.sync_engine.pool.postfork_pool.open())

        async def iteration() -> None:
            fairy = await engine.raw_connection()
            await select_one_async(fairy.driver_connection)
            await greenlet_spawn(fairy.close)

        yield iteration
        LOOP.run_until_complete(engine.dispose())

    return variant


@contextmanager
def aiomysql_pool(url: DatabaseURL) -> Iterator[Iteration]:
    """aiomysql's own pool, minsize 1, as a careful user opens it in a lifespan."""
    import aiomysql

    pool = LOOP.run_until_complete(
        aiomysql.create_pool(minsize=1, maxsize=1, **async_connect_args(url, "aiomysql"))
    )

    async def iteration() -> None:
        async with pool.acquire() as conn:
            await select_one_async(conn)

    yield iteration
    pool.close()
    LOOP.run_until_complete(pool.wait_closed())


ASYNC_VARIANTS: dict[str, Variant] = {
    "raw asyncmy connection (floor)": raw_async("asyncmy"),
    "postfork.AsyncPool": postfork_async_pool("asyncmy"),
    "SQLAlchemy AsyncAdaptedQueuePool": sqlalchemy_async(pre_ping=False),
    "SQLAlchemy AsyncAdaptedQueuePool + pre_ping": sqlalchemy_async(pre_ping=True),
    "SQLAlchemy async on postfork": sqlalchemy_async(pre_ping=None),
    "raw aiomysql connection (floor)": raw_async("aiomysql"),
    "postfork.AsyncPool (aiomysql)": postfork_async_pool("aiomysql"),
    "aiomysql create_pool": aiomysql_pool,
}


@dataclass(frozen=True)
class Suite:
    """A set of variants and how to read them: each one's overhead is over its driver's
    floor; ``ours`` is postfork's, ``baseline`` the one with the target ratio."""

    variants: dict[str, Variant]
    ours: str
    baseline: str
    target: float

    def floor_of(self, name: str) -> str:
        if name in ASYNC_VARIANTS:
            return (
                "raw aiomysql connection (floor)"
                if "aiomysql" in name
                else "raw asyncmy connection (floor)"
            )
        return "raw connection (floor)"


SUITES = {
    "sync": Suite(VARIANTS, "postfork.Pool", "SQLAlchemy QueuePool + pre_ping", 5.0),
    "asyncio": Suite(
        ASYNC_VARIANTS, "postfork.AsyncPool", "SQLAlchemy AsyncAdaptedQueuePool + pre_ping", 3.0
    ),
}
SUITE = SUITES["sync"]  # --asyncio: SUITES["asyncio"]


def measure(
    url: DatabaseURL, iterations: int, delay_ms: float | None
) -> dict[str, dict[str, float]]:
    """Every variant open at once (each behind its own proxy when ``delay_ms`` is given), then
    ROUNDS interleaved rounds of iterations // ROUNDS each: whatever else this shared machine
    does in a moment slows every variant alike. Per variant: the median round's mean."""
    per_round = iterations // ROUNDS
    with ExitStack() as stack:
        proxies: dict[str, ProxyProcess] = {}
        iterations_of: dict[str, Callable[[int], None]] = {}
        for name, variant in SUITE.variants.items():
            target = url
            if delay_ms is not None:
                proxies[name] = stack.enter_context(ProxyProcess(proxy_target(url), delay_ms))
                target = proxied(url, proxies[name].port)
            iterations_of[name] = batch(stack.enter_context(variant(target)))
        for run in iterations_of.values():
            run(WARMUP)
        means: dict[str, list[float]] = {name: [] for name in SUITE.variants}
        for round_number in range(ROUNDS):
            for name, run in iterations_of.items():
                started = time.perf_counter()
                run(per_round)
                means[name].append((time.perf_counter() - started) / per_round)
            print(f"  round {round_number + 1}/{ROUNDS}", file=sys.stderr, flush=True)
        results = {
            name: {"us_per_iteration": statistics.median(means[name]) * 1e6} for name in means
        }
        for name, proxy in proxies.items():
            counters = proxy.stop()
            results[name]["round_trips_per_iteration"] = counters["client_chunks"] / (
                WARMUP + per_round * ROUNDS
            )
    for name, row in results.items():
        floor = results[SUITE.floor_of(name)]["us_per_iteration"]
        row["overhead_us"] = row["us_per_iteration"] - floor
    return results


def run_variant(name: str, count: int, url: DatabaseURL) -> None:
    """The loop callgrind counts (in a child process): open, warm up, ``count`` iterations."""
    variants = {**VARIANTS, **ASYNC_VARIANTS}
    with variants[name](url) as iteration:
        batch(iteration)(WARMUP + count)


def instructions_per_iteration(url: DatabaseURL) -> dict[str, dict[str, float]]:
    """Per variant: (instructions for LONG iterations - for SHORT) / (LONG - SHORT), so the
    start-up cancels out; the floor's figure is what SELECT 1 itself costs the client."""
    results: dict[str, dict[str, float]] = {}
    for name in SUITE.variants:
        counted = {}
        for count in (CALLGRIND_SHORT, CALLGRIND_LONG):
            command = [
                "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                __file__, "--run", name, str(count),
            ]  # fmt: skip
            env = {**os.environ, CHILD_URL: url.render_secret()}  # not on a command line
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            found = re.search(r"Collected : (\d+)", done.stderr)
            if done.returncode != 0 or found is None:
                raise SystemExit(f"callgrind run failed for {name}:\n{done.stderr[-2000:]}")
            counted[count] = int(found.group(1))
        per = (counted[CALLGRIND_LONG] - counted[CALLGRIND_SHORT]) / (
            CALLGRIND_LONG - CALLGRIND_SHORT
        )
        results[name] = {"instructions": per}
        print(f"  {name}: {per:,.0f} instructions", file=sys.stderr, flush=True)
    for name, row in results.items():
        floor = results[SUITE.floor_of(name)]["instructions"]
        row["overhead_instructions"] = row["instructions"] - floor
    return results


def print_instructions(results: dict[str, dict[str, float]]) -> None:
    ours = results[SUITE.ours]["overhead_instructions"]
    print("\nin-process instructions per iteration (callgrind)")
    print(f"  {'variant':<34} {'instructions':>12} {'overhead':>10} {'vs postfork':>12}")
    for name, row in results.items():
        ratio = row["overhead_instructions"] / ours if ours > 0 else float("nan")
        print(
            f"  {name:<34} {row['instructions']:>12,.0f} {row['overhead_instructions']:>10,.0f} "
            f"{ratio:>11.1f}x"
        )


def proxy_rtt_ms(url: DatabaseURL, delay_ms: float) -> dict[str, float]:
    """The proxy's own cost: SELECT 1 round trip direct, through the proxy at 0 and at delay."""

    def median_rtt(target: DatabaseURL) -> float:
        conn = creator(target)()
        samples = []
        for _ in range(500):
            started = time.perf_counter()
            select_one(conn)
            samples.append((time.perf_counter() - started) * 1e3)
        conn.close()
        return statistics.median(samples)

    figures = {"direct_ms": median_rtt(url)}
    for delay in (0.0, delay_ms):
        with ProxyProcess(proxy_target(url), delay) as proxy:
            figures[f"proxy_{delay:g}ms_ms"] = median_rtt(proxied(url, proxy.port))
    return figures


def print_table(title: str, results: dict[str, dict[str, float]]) -> None:
    postfork_overhead = results[SUITE.ours]["overhead_us"]
    print(f"\n{title}")
    print(
        f"  {'variant':<34} {'us/iter':>9} {'overhead us':>12} {'vs postfork':>12} {'RTT/iter':>9}"
    )
    for name, row in results.items():
        ratio = row["overhead_us"] / postfork_overhead if postfork_overhead > 0 else float("nan")
        trips = row.get("round_trips_per_iteration")
        print(
            f"  {name:<34} {row['us_per_iteration']:>9.1f} {row['overhead_us']:>12.1f} "
            f"{ratio:>11.1f}x {'' if trips is None else f'{trips:.2f}':>9}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--delay-ms", type=float, default=1.0)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    parser.add_argument("--asyncio", action="store_true", help="the asyncio variants instead")
    parser.add_argument("--run", nargs=2, metavar=("VARIANT", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    global SUITE
    SUITE = SUITES["asyncio" if args.asyncio else "sync"]
    if args.run:
        run_variant(args.run[0], int(args.run[1]), parse_url(os.environ[CHILD_URL]))
        return
    with selected_database(args.database_url) as (url, origin):
        print(f"database: {url.redacted()} [{origin}]; {args.iterations} iterations per variant")
        report: dict[str, Any] = {
            "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
            "iterations": args.iterations,
            "proxy_validation": proxy_rtt_ms(url, args.delay_ms),
        }
        print("proxy validation (median SELECT 1 round trip, ms):", report["proxy_validation"])
        if not args.no_callgrind:
            report["instructions"] = instructions_per_iteration(url)
            print_instructions(report["instructions"])
        report["local"] = measure(url, args.iterations, None)
        print_table("local socket", report["local"])
        report["proxy"] = measure(url, args.iterations, args.delay_ms)
        print_table(f"through the delay proxy ({args.delay_ms:g} ms each way)", report["proxy"])
    for network, key in (("instructions", "overhead_instructions"), ("local", "overhead_us")):
        rows = report.get(network)
        if rows:
            ratio = rows[SUITE.baseline][key] / rows[SUITE.ours][key]
            print(
                f"{network}: {SUITE.baseline} overhead / postfork's = {ratio:.1f}x "
                f"(target {SUITE.target:g}x)"
            )
    rows = report.get("instructions")
    if rows and not args.asyncio:
        ratio = (
            rows["SQLAlchemy on postfork"]["overhead_instructions"]
            / rows["SQLAlchemy QueuePool"]["overhead_instructions"]
        )
        print(f"instructions: SQLAlchemy on postfork / QueuePool = {ratio:.2f}x (target <= 1)")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
