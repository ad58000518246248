"""``postfork doctor``: what a pool would see on this database, checked for real."""

from __future__ import annotations

import statistics
import time

from postfork.doctor.forkcheck import run_in_subprocess as _forkcheck
from postfork.doctor.output import Say
from postfork.pool import Pool, lifetime
from postfork.url import DatabaseURL


def run(url: DatabaseURL, origin: str, driver: str, say: Say) -> bool:
    say(f"database   {url.redacted()}  [{origin}]")
    with Pool(url, driver=driver, min_idle=0, max_size=1) as pool:
        costs = []
        for _ in range(5):
            started = time.perf_counter()
            _connect_once(pool)
            costs.append((time.perf_counter() - started) * 1e3)
        with pool.connection() as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT VERSION(), @@SESSION.wait_timeout, @@GLOBAL.max_connections")
            version, wait_timeout, max_connections = cursor.fetchone()
    say(f"driver     {driver}")
    say(f"server     {version}; wait_timeout={wait_timeout}s; max_connections={max_connections}")
    say(f"connect    first {costs[0]:.2f} ms, then median {statistics.median(costs[1:]):.2f} ms")
    longest = lifetime.ceiling(pool.options.max_lifetime, float(wait_timeout))
    jitter = pool.options.lifetime_jitter
    say(
        f"lifetime   connections retire after at most {longest:.0f}s "
        f"(minus up to {jitter:.0%} jitter)"
    )
    report = _forkcheck(url, "--driver", driver, "--fork", "os", "--rounds", "1")
    c_report = _forkcheck(url, "--driver", driver, "--fork", "libc", "--rounds", "1")
    ok = bool(report["sessions_unchanged"] and c_report["sessions_unchanged"])
    say(f"fork       {'parent sessions survive every child' if ok else 'FAILED: ' + repr(report)}")
    return ok


def _connect_once(pool: Pool) -> None:
    """Open a fresh session (discarding the previous one) so each sample is a real connect."""
    lease = pool.connection()
    with lease:
        lease.invalidate()
