"""What routing a read through postfork.Cluster costs a checkout: time and round trips.

    .venv/bin/python benchmarks/topology_overhead.py \
        --json benchmarks/results/topology_overhead.json

On a private MariaDB (so the server's counters are ours alone), in one process, interleaved
rounds (whatever else the shared machine does falls on both): a checkout and return of
``postfork.Pool`` against a read checkout and return through ``postfork.Cluster`` (the route
from the last check's verdicts, and the routed lease around the member pool's lease), no
statement inside, so the difference is the topology's own cost. Then the round trips: the
server's ``Questions`` counter over many routed checkouts (target: zero per checkout; the checks
run in ``maintain()``, which a worker calls after the response, never here).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from postfork import Cluster, Pool  # noqa: E402
from postfork.topology import Health, Verdict  # noqa: E402
from postfork_tools.embedded import EmbeddedMariaDB  # noqa: E402

ROUNDS = 15


def routed_cluster(url: Any) -> Cluster:
    """One member judged serving, as a check leaves a fresh replica."""
    cluster = Cluster(galera=[url], min_idle=1, max_size=1, autocommit=True)
    cluster.members[0].set(Verdict(Health.UP))
    cluster._reroute()
    cluster.members[0].pool.warm()
    return cluster


def per_iteration_us(body: Callable[[], None], iterations: int) -> float:
    started = time.perf_counter()
    for _ in range(iterations):
        body()
    return (time.perf_counter() - started) / iterations * 1e6


def questions(server: EmbeddedMariaDB) -> int:
    return int(server.execute("SHOW GLOBAL STATUS LIKE 'Questions'")[0][1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20000, help="per round and variant")
    parser.add_argument("--json")
    args = parser.parse_args()
    with EmbeddedMariaDB() as server:
        pool = Pool(server.url, min_idle=1, max_size=1, autocommit=True)
        pool.warm()
        cluster = routed_cluster(server.url)

        def pool_checkout() -> None:
            with pool.connection():
                pass

        def routed_checkout() -> None:
            with cluster.reader():
                pass

        rounds: dict[str, list[float]] = {"postfork.Pool": [], "postfork.Cluster reader": []}
        for _ in range(ROUNDS):
            rounds["postfork.Pool"].append(per_iteration_us(pool_checkout, args.iterations))
            rounds["postfork.Cluster reader"].append(
                per_iteration_us(routed_checkout, args.iterations)
            )
        checkouts = 100_000
        reading = questions(server)
        before = questions(server)  # what reading the counter itself costs: before - reading
        for _ in range(checkouts):
            routed_checkout()
        asked = questions(server) - before - (before - reading)
        pool.close()
        cluster.close()
    medians = {name: statistics.median(values) for name, values in rounds.items()}
    added = medians["postfork.Cluster reader"] - medians["postfork.Pool"]
    summary = {
        "us_per_checkout": medians,
        "routing_added_us": added,
        "round_trips_per_routed_checkout": asked / checkouts,
        "target": "under 5 us, zero round trips",
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        document = {
            "command": "benchmarks/topology_overhead.py " + " ".join(sys.argv[1:]),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "summary": summary,
            "rounds_us": rounds,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
