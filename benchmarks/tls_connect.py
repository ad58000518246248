"""What TLS costs the story: the connect with and without TLS through the 1 ms delay proxy, both
drivers, side by side; then `postfork bench` on the same TLS-enabled server, `lazy` against
`warm` (a respawned worker's first request with a TLS handshake on its path, or not).

    .venv/bin/python benchmarks/tls_connect.py --json benchmarks/results/tls.json

Starts its own TLS-enabled mariadbd (a CA made for the run) on a loopback port and stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tls_ca import TestCA, tls_server_args  # noqa: E402

from postfork.drivers import load_driver  # noqa: E402
from postfork.url import DatabaseURL  # noqa: E402
from postfork_tools.bench.delay_proxy import ProxyProcess  # noqa: E402
from postfork_tools.embedded import EmbeddedMariaDB  # noqa: E402
from postfork_tools.serve.runner import free_port  # noqa: E402

PASSWORD = "bench-tls"
MODES = ("disabled", "verify_identity")


def connect_costs(url: DatabaseURL, proxy: ProxyProcess, connects: int) -> dict[str, Any]:
    """Per driver and mode: median and p90 connect ms, round trips per connect, interleaved."""
    samples: dict[tuple[str, str], list[float]] = {}
    trips: dict[tuple[str, str], list[int]] = {}
    drivers = {name: load_driver(name) for name in ("mysqlclient", "pymysql")}
    for driver in drivers.values():
        driver.preload()
    for _ in range(connects):
        for name, driver in drivers.items():
            for mode in MODES:
                options = {"ssl_mode": mode} | (
                    {"ssl_ca": url.options["ssl_ca"]} if mode != "disabled" else {}
                )
                target = DatabaseURL(
                    url.host, proxy.port, url.user, url.password, None, None, options
                )
                before = proxy.sample()["client_chunks"]
                started = time.perf_counter()
                conn = driver.connect(target, connect_timeout=5, autocommit=True)
                elapsed = time.perf_counter() - started
                driver.close(conn)
                trips.setdefault((name, mode), []).append(proxy.sample()["client_chunks"] - before)
                samples.setdefault((name, mode), []).append(elapsed * 1e3)
    result: dict[str, Any] = {}
    for (name, mode), values in samples.items():
        values.sort()
        result[f"{name} {mode}"] = {
            "median_ms": round(statistics.median(values), 2),
            "p90_ms": round(values[int(0.9 * (len(values) - 1))], 2),
            "client_chunks_per_connect": statistics.median(trips[(name, mode)]),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connects", type=int, default=40)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-bench", action="store_true", help="only the connect costs")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="postfork-tls-bench-"))
    ca = TestCA(workdir)
    server = EmbeddedMariaDB(port=free_port(), server_args=tls_server_args(ca, ca.issue("server")))
    report: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.python_version()}",
        "connects": args.connects,
    }
    try:
        server.start()
        server.execute(f"CREATE USER 'app'@'%' IDENTIFIED BY '{PASSWORD}'")
        server.execute("GRANT ALL ON *.* TO 'app'@'%'")
        assert server.port is not None
        url = DatabaseURL(
            "127.0.0.1", server.port, "app", PASSWORD, "postfork", None, {"ssl_ca": str(ca.path)}
        )
        with ProxyProcess(f"tcp:127.0.0.1:{server.port}", 1.0) as proxy:
            report["connect"] = connect_costs(url, proxy, args.connects)
        for name, row in report["connect"].items():
            print(
                f"  {name:32} {row['median_ms']:7.2f} ms  p90 {row['p90_ms']:7.2f}  "
                f"client chunks {row['client_chunks_per_connect']}"
            )
        if not args.no_bench:
            bench_json = workdir / "bench.json"
            # the URL (with its password) goes by the environment, not the command line
            env = {**os.environ, "DATABASE_URL": url.render_secret() + "&ssl_mode=verify_identity"}
            command = [
                str(ROOT / ".venv/bin/postfork"),
                "bench",
                "--quick",
                "--no-storms",
                "--scenarios",
                "lazy,warm",
                "--json",
                str(bench_json),
            ]
            subprocess.run(command, check=True, env=env)
            report["bench"] = json.loads(bench_json.read_text())
    finally:
        server.stop()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"JSON: {args.json}")


if __name__ == "__main__":
    main()
