"""``postfork demo``: the fork problem and the pool's answer, shown against a real database.

Every figure is measured in this run. Output goes through ``say`` (the CLI passes ``print``).
"""

from __future__ import annotations

import time

from postfork.doctor.forkcheck import run_in_subprocess as _forkcheck
from postfork.doctor.output import Say
from postfork.drivers import DRIVER_NAMES, connect
from postfork.pool import Pool
from postfork.url import DatabaseURL


def show_naive_fork(url: DatabaseURL, say: Say) -> None:
    say("1. The bug: a forked child that merely exits kills its parent's session")
    for driver in DRIVER_NAMES:
        report = _forkcheck(url, "--naive", "--driver", driver)
        verdict = "survived" if report["parent_survived"] else f"BROKEN  {report['error']}"
        say(f"   raw {driver:<12} child exits -> parent's next query: {verdict}")


def show_fork_matrix(url: DatabaseURL, say: Say, rounds: int = 3) -> bool:
    say("2. postfork.Pool: 3 warm connections; children leave in 6 ways, both fork paths")
    say(f"   {'driver':<12} {'fork':<11} {'children':>8}  parent sessions (ids)        replaced")
    all_ok = True
    for driver in DRIVER_NAMES:
        for method, label in (("os", "os.fork"), ("libc", "C fork()")):
            report = _forkcheck(url, "--driver", driver, "--fork", method, "--rounds", str(rounds))
            ok = report["sessions_unchanged"] and report["parent_connects"] == 3
            all_ok &= ok
            ids = ",".join(map(str, report["sessions_before"]))
            same = "unchanged" if report["sessions_unchanged"] else "CHANGED"
            say(
                f"   {driver:<12} {label:<11} {report['children']:>8}  {ids:<14} {same:<13} "
                f"{report['parent_connects'] - 3:>8}"
            )
    say("   (C fork() skips Python's at-fork hooks, as uWSGI's fork does; the pid check covers it)")
    return all_ok


def show_liveness(url: DatabaseURL, say: Say) -> None:
    say("3. Zero-round-trip liveness: the server KILLs an idle pooled connection")
    with Pool(url, min_idle=2, max_size=2) as pool:
        pool.warm()
        with pool.connection() as conn:
            victim = int(conn.thread_id())
        _kill(url, victim)
        time.sleep(0.05)
        with pool.connection() as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT CONNECTION_ID()")
            served_by = int(cursor.fetchone()[0])
        stale = pool.stats()["discards"]["stale"]
    say(f"   killed {victim}; next checkout served by {served_by}, no error")
    say(f"   discarded as stale: {stale} (found by poll(), no statement sent)")


def _kill(url: DatabaseURL, connection_id: int) -> None:
    admin = connect(url, timeout=5, autocommit=True)
    try:
        admin.cursor().execute(f"KILL {int(connection_id)}")
    finally:
        admin.close()


def show_costs(url: DatabaseURL, say: Say, checkouts: int = 2000) -> None:
    say("4. What a worker pays: connect once after fork, then checkouts cost microseconds")
    with Pool(url, min_idle=1, max_size=1) as pool:
        started = time.perf_counter()
        pool.warm()
        connect_ms = (time.perf_counter() - started) * 1e3
        started = time.perf_counter()
        for _ in range(checkouts):
            with pool.connection():
                pass
        checkout_us = (time.perf_counter() - started) / checkouts * 1e6
        stats = pool.stats()
    say(f"   warm(): {connect_ms:.2f} ms for one connection (done after fork, before a request)")
    say(f"   checkout + return: {checkout_us:.1f} us each over {checkouts} (no round trip)")
    counts = {key: stats[key] for key in ("connects", "checkouts", "idle")}
    say("   stats: " + " ".join(f"{key}={value}" for key, value in counts.items()))


def run(url: DatabaseURL, origin: str, say: Say) -> bool:
    say(f"postfork demo -- database {url.redacted()}  [{origin}]")
    say("")
    show_naive_fork(url, say)
    say("")
    ok = show_fork_matrix(url, say)
    say("")
    show_liveness(url, say)
    say("")
    show_costs(url, say)
    say("")
    say("fork safety: " + ("every parent session survived every child" if ok else "FAILED"))
    return ok
