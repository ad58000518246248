"""A new worker's first request against the steady median, for ORM apps of the benchmarks' own
(benchmarks/apps: a Flask-SQLAlchemy shop and a Django shop), under uWSGI and gunicorn with the
app loaded before fork (uWSGI's default, gunicorn ``--preload``) and in each worker (uWSGI
``--lazy-apps``, gunicorn without ``--preload``), recycled every ``--max-requests``, side by side
in one run:

- ``stock``: the framework's own pool (SQLAlchemy's QueuePool with pre-ping; Django's backend);
- ``postfork``: the pool class / backend and ``install()`` (or the ``postfork.django`` app), no
  warm-up setting;
- ``warm``: plus the documented warm-up request (``postfork.wsgi.warmup_request``,
  ``POSTFORK_WARMUP_PATH``).

REQUESTS sequential GETs (a new connection each, as a client behind a balancer); a worker's
first request is its request number 1 (``X-Worker``), for the workers born after the server
started; steady: every request numbered 2 or more. Client-side latency and the time inside the
app (``X-App-Ms``), medians.

    .venv/bin/python benchmarks/first_request.py [--apps flask,django] [--json PATH]

The database: DATABASE_URL, else the local server (root, no password); it uses a database of its
own, ``postfork_first_request``, made and seeded here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from postfork import parse_url
from postfork.drivers import connect
from postfork.sqlalchemy import engine_url
from postfork_tools.serve.command import ServeOptions, _executable
from postfork_tools.serve.runner import ServiceProcess, free_port, get

ROOT = Path(__file__).resolve().parents[1]
APPS_DIR = ROOT / "benchmarks" / "apps"
DATABASE = "postfork_first_request"
APPS = {
    "flask": ("benchmarks.apps.flask_shop:application", "/customers/{}"),
    "django": ("benchmarks.apps.django_shop.wsgi:application", "/customers/{}/"),
}
SERVERS = ("uwsgi", "uwsgi-lazy", "gunicorn", "gunicorn-lazy")
MODES = ("stock", "postfork", "warm")


@dataclasses.dataclass
class Sample:
    ms: float
    app_ms: float
    pid: int
    number: int


def server_argv(
    server: str, module: str, port: int, mode: str, processes: int, every: int
) -> list[str]:
    lazy = server.endswith("-lazy")
    if server.startswith("uwsgi"):
        return [
            _executable("uwsgi"),
            *("--http-socket", f"127.0.0.1:{port}", "--master", "--processes", str(processes)),
            *("--max-requests", str(every), "--min-worker-lifetime", "0"),
            *("--enable-threads", "--need-app", "--die-on-term", "--disable-logging"),
            *("--chdir", str(ROOT), "--module", module),
            *(["--lazy-apps"] if lazy else []),
        ]
    conf = APPS_DIR / ("gunicorn_stock.conf.py" if mode == "stock" else "gunicorn_postfork.conf.py")
    return [
        _executable("gunicorn"),
        *("-c", str(conf), "--bind", f"127.0.0.1:{port}", "--workers", str(processes)),
        *("--max-requests", str(every), "--max-requests-jitter", str(max(1, every // 4))),
        *("--chdir", str(ROOT)),
        *([] if lazy else ["--preload"]),
        module,
    ]


def seed(url: Any) -> None:
    admin = connect(dataclasses.replace(url, database=None), autocommit=True)
    try:
        admin.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    finally:
        admin.close()
    env = environment(url)
    for app in ("flask", "django"):
        code = (
            "from benchmarks.apps.flask_shop import seed; seed()"
            if app == "flask"
            else "from benchmarks.apps.django_shop.seed import seed; seed()"
        )
        subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env={**env, "SHOP_MODE": "stock"}, check=True
        )


def environment(url: Any) -> dict[str, str]:
    rendered = url.render_secret()
    return {
        **os.environ,
        "SHOP_DATABASE_URL": rendered,
        "SHOP_URL": engine_url(rendered).render_as_string(hide_password=False),
        "PYTHONPATH": str(ROOT),
    }


def run_variant(
    url: Any, app: str, server: str, mode: str, args: argparse.Namespace
) -> dict[str, Any]:
    module, path = APPS[app]
    port = free_port()
    service = ServiceProcess(
        url,
        ServeOptions(server="dev", bind=f"127.0.0.1:{port}"),
        env={**environment(url), "SHOP_MODE": mode},
        argv=server_argv(server, module, port, mode, args.processes, args.max_requests),
    )
    samples: list[Sample] = []
    with service:
        time.sleep(1.0)  # every starting worker up
        for n in range(args.requests):
            reply = get(port, path.format(n % 20 + 1))
            if reply.status != 200:
                raise RuntimeError(
                    f"{app}/{server}/{mode}: {reply.status} {reply.body!r}\n{service.log()[-2000:]}"
                )
            pid, _, number = reply.headers["x-worker"].partition("/")
            samples.append(
                Sample(reply.elapsed * 1e3, float(reply.headers["x-app-ms"]), int(pid), int(number))
            )
    return figures(samples, args.processes)


def figures(samples: list[Sample], processes: int) -> dict[str, Any]:
    order: list[int] = []
    for sample in samples:
        if sample.pid not in order:
            order.append(sample.pid)
    starters = set(order[:processes])
    firsts = [s for s in samples if s.number == 1 and s.pid not in starters]
    steady = [s for s in samples if s.number >= 2]
    first_ms = statistics.median(s.ms for s in firsts) if firsts else float("nan")
    steady_ms = statistics.median(s.ms for s in steady)
    first_app = statistics.median(s.app_ms for s in firsts) if firsts else float("nan")
    steady_app = statistics.median(s.app_ms for s in steady)
    return {
        "requests": len(samples),
        "new_workers": len(firsts),
        "first_ms": first_ms,
        "steady_ms": steady_ms,
        "first_vs_steady": first_ms / steady_ms,
        "first_app_ms": first_app,
        "steady_app_ms": steady_app,
        "first_vs_steady_app": first_app / steady_app,
    }


HEADER = (
    f"{'app':7} {'server':14} {'mode':9} {'new':>4} {'first':>7} {'steady':>7} {'ratio':>6}"
    f"   {'app: first':>10} {'steady':>7} {'ratio':>6}"
)


def row(app: str, server: str, mode: str, f: dict[str, Any]) -> str:
    client = f"{f['first_ms']:7.2f} {f['steady_ms']:7.2f} {f['first_vs_steady']:5.2f}x"
    inside = f"{f['first_app_ms']:10.2f} {f['steady_app_ms']:7.2f} {f['first_vs_steady_app']:5.2f}x"
    return f"{app:7} {server:14} {mode:9} {f['new_workers']:4d} {client}   {inside}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", default=",".join(APPS))
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--max-requests", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    base = parse_url(os.environ.get("DATABASE_URL", "mysql://root@127.0.0.1:3306/test"))
    url = dataclasses.replace(base, database=DATABASE)
    seed(url)
    results: dict[str, Any] = {}
    print(HEADER)
    for app in args.apps.split(","):
        for server in args.servers.split(","):
            for mode in args.modes.split(","):
                figures_ = run_variant(url, app, server, mode, args)
                results[f"{app}/{server}/{mode}"] = figures_
                print(row(app, server, mode, figures_), flush=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"options": vars(args) | {"json": str(args.json)}, "results": results}, indent=2
            )
        )


if __name__ == "__main__":
    main()
