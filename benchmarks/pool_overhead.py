"""Pool overhead, side by side in one run: checkout, SELECT 1, return.

Variants (all mysqlclient, same connect arguments): one raw connection reused (the floor),
postfork.Pool, SQLAlchemy QueuePool with and without pool_pre_ping, SQLAlchemy on postfork's
pool (PostforkPool), DBUtils PooledDB with its defaults. Networks: the database's own socket,
and a delay proxy adding ~1 ms each way.

Round trips per iteration are counted by the proxy (client chunks / iterations): SELECT 1 is
one, anything above is what the pool added.

    .venv/bin/python benchmarks/pool_overhead.py [--iterations 20000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from postfork import DatabaseURL, Pool
from postfork.bench.delay_proxy import ProxyProcess, proxied, proxy_target
from postfork.drivers import load_driver
from postfork.tools.database import selected_database

Iteration = Callable[[], None]
Variant = Callable[[DatabaseURL], Iterator[Iteration]]
WARMUP = 500
REPEATS = 3


def select_one(conn: Any) -> None:
    cursor = conn.cursor()
    cursor.execute("SELECT 1")
    cursor.fetchall()
    cursor.close()


def creator(url: DatabaseURL) -> Callable[[], Any]:
    driver = load_driver("mysqlclient")
    return lambda: driver.connect(url, connect_timeout=5, autocommit=False)


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
    engine.pool.postfork_pool.warm()

    def iteration() -> None:
        conn = engine.raw_connection()
        select_one(conn)
        conn.close()  # back to the pool (its reset: the rollback, sent without waiting)

    yield iteration
    engine.dispose()


@contextmanager
def dbutils_pool(url: DatabaseURL) -> Iterator[Iteration]:
    from dbutils.pooled_db import PooledDB

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
    "SQLAlchemy QueuePool": sqlalchemy_pool(pre_ping=False),
    "SQLAlchemy QueuePool + pre_ping": sqlalchemy_pool(pre_ping=True),
    "SQLAlchemy on postfork": sqlalchemy_on_postfork,
    "DBUtils PooledDB (defaults)": dbutils_pool,
}


def time_variant(variant: Variant, url: DatabaseURL, iterations: int) -> float:
    """Best of REPEATS mean seconds per iteration (the least disturbed by this noisy machine)."""
    with variant(url) as iteration:
        for _ in range(WARMUP):
            iteration()
        means = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            for _ in range(iterations // REPEATS):
                iteration()
            means.append((time.perf_counter() - started) / (iterations // REPEATS))
    return min(means)


def measure(
    url: DatabaseURL, iterations: int, delay_ms: float | None
) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, variant in VARIANTS.items():
        if delay_ms is None:
            seconds = time_variant(variant, url, iterations)
            results[name] = {"us_per_iteration": seconds * 1e6}
            continue
        with ProxyProcess(proxy_target(url), delay_ms) as proxy:
            seconds = time_variant(variant, proxied(url, proxy.port), iterations)
            counters = proxy.stop()
        measured = WARMUP + (iterations // REPEATS) * REPEATS
        results[name] = {
            "us_per_iteration": seconds * 1e6,
            "round_trips_per_iteration": counters["client_chunks"] / measured,
        }
        print(f"  {name}: done", file=sys.stderr, flush=True)
    floor = results["raw connection (floor)"]["us_per_iteration"]
    for row in results.values():
        row["overhead_us"] = row["us_per_iteration"] - floor
    return results


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
    postfork_overhead = results["postfork.Pool"]["overhead_us"]
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
    args = parser.parse_args()
    with selected_database(args.database_url) as (url, origin):
        print(f"database: {url.redacted()} [{origin}]; {args.iterations} iterations per variant")
        report: dict[str, Any] = {
            "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
            "iterations": args.iterations,
            "proxy_validation": proxy_rtt_ms(url, args.delay_ms),
        }
        print("proxy validation (median SELECT 1 round trip, ms):", report["proxy_validation"])
        report["local"] = measure(url, args.iterations, None)
        print_table("local socket", report["local"])
        report["proxy"] = measure(url, args.iterations, args.delay_ms)
        print_table(f"through the delay proxy ({args.delay_ms:g} ms each way)", report["proxy"])
    for network in ("local", "proxy"):
        rows = report[network]
        ratio = (
            rows["SQLAlchemy QueuePool + pre_ping"]["overhead_us"]
            / rows["postfork.Pool"]["overhead_us"]
        )
        print(f"\n{network}: QueuePool+pre_ping overhead / postfork's = {ratio:.1f}x (target 5x)")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
