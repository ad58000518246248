"""``postfork serve``: run the reference service under uWSGI, gunicorn or a development server
(WSGI), or under uvicorn, gunicorn's uvicorn worker or its own ASGI worker, hypercorn or daphne (the
service's ASGI twin, on the asyncio pool).

The server runs as a child process with the shipped configuration (``postfork/deploy``), the
database URL in its environment (never on its command line) and the options given here.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from postfork import environment
from postfork.drivers import ASYNC_DRIVER_NAMES
from postfork.errors import ConfigError
from postfork.url import DatabaseURL
from postfork_tools.deploy import GUNICORN_CONF, UWSGI_INI
from postfork_tools.service.settings import ASGI_CONNECT_MODES, CONNECT_MODES

WSGI_SERVERS = ("uwsgi", "gunicorn", "dev")
RECYCLING_ASGI_SERVERS = ("uvicorn", "gunicorn-uvicorn", "gunicorn-asgi", "hypercorn")
ASGI_SERVERS = (*RECYCLING_ASGI_SERVERS, "daphne")  # daphne: one process, never recycled
SERVERS = (*WSGI_SERVERS, *ASGI_SERVERS)
WSGI_APP = "postfork_tools.service.wsgi:application"
ASGI_APP = "postfork_tools.service.asgi:app"
UVICORN_HEALTHCHECK_TIMEOUT = 2  # seconds; when workers recycle (see command())
# gunicorn's worker class for each of its ASGI modes (its own "asgi" worker: gunicorn 24+)
_GUNICORN_WORKERS = {"gunicorn-uvicorn": "uvicorn_worker.UvicornWorker", "gunicorn-asgi": "asgi"}


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    server: str = "uwsgi"
    processes: int = 4
    max_requests: int = 100  # 0: never recycle
    bind: str = "127.0.0.1:8000"
    connect: str = "warm"
    driver: str | None = None  # None: mysqlclient under a WSGI server, asyncmy under an ASGI one
    extra: tuple[str, ...] = ()  # passed to the server as they are
    app: str | None = None  # module:attribute to serve instead of the reference service

    def __post_init__(self) -> None:
        modes = ASGI_CONNECT_MODES if self.asgi else CONNECT_MODES
        if self.server in SERVERS and self.connect not in modes:
            raise ConfigError(
                f"--connect {self.connect} is not a mode of the service under {self.server}; "
                f"choose one of {', '.join(modes)}"
            )
        if self.server == "daphne" and (self.processes != 1 or self.max_requests):
            raise ConfigError(
                "daphne serves from one process and never recycles it: use --processes 1 "
                "--max-requests 0 (for workers that recycle: uvicorn, gunicorn or hypercorn)"
            )
        asyncio_driver = self.driver in ASYNC_DRIVER_NAMES
        if self.driver is None:
            object.__setattr__(self, "driver", "asyncmy" if self.asgi else "mysqlclient")
        elif asyncio_driver != self.asgi:
            kind = "an ASGI server: asyncmy or aiomysql" if self.asgi else "a WSGI server"
            raise ConfigError(
                f"--driver {self.driver} does not run under {self.server} ({kind}); leave "
                "--driver out for the server's default"
            )

    @property
    def asgi(self) -> bool:
        return self.server in ASGI_SERVERS

    @property
    def app_path(self) -> str:
        return self.app or (ASGI_APP if self.asgi else WSGI_APP)


def describe(options: ServeOptions) -> str:
    """What will serve, in words (the development server ignores processes and recycling)."""
    if options.server in ("dev", "daphne"):
        return "1 process, no recycling"
    recycling = f"max-requests {options.max_requests}" if options.max_requests else "no recycling"
    return f"{options.processes} processes, {recycling}"


def split_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--bind must be HOST:PORT, got {bind!r}")
    return host, int(port)


def _executable(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if not found:
        raise ConfigError(f"{name} is not installed: pip install {name} (or --server dev)")
    return found


def command(options: ServeOptions) -> list[str]:
    """The server's command line (no secrets: the database URL travels in the environment)."""
    split_bind(options.bind)
    if options.server == "uwsgi":
        return [
            _executable("uwsgi"),
            "--ini",
            str(UWSGI_INI),
            "--http-socket",
            options.bind,
            "--processes",
            str(options.processes),
            "--max-requests",
            str(options.max_requests),
            *options.extra,
        ]
    if options.server == "gunicorn" or options.server in _GUNICORN_WORKERS:
        return _gunicorn(options)
    if options.server == "dev":
        return [sys.executable, "-m", "postfork_tools.serve.devserver", options.bind]
    if options.server == "uvicorn":
        host, port = split_bind(options.bind)
        # uvicorn's supervisor pings its workers in turn; one caught exiting never answers, and
        # the supervisor then waits the whole health-check timeout (5 s by default) before it
        # respawns anything: at recycling, every few seconds. 2 s bounds that (docs/how-to/asgi.md).
        recycling = ["--limit-max-requests", str(options.max_requests)]
        recycling += ["--timeout-worker-healthcheck", str(UVICORN_HEALTHCHECK_TIMEOUT)]
        return [
            _executable("uvicorn"),
            options.app_path,
            *("--host", host, "--port", str(port), "--workers", str(options.processes)),
            *(recycling if options.max_requests else []),
            "--no-access-log",  # postfork's access line says more (POSTFORK_ACCESS_LOG)
            *options.extra,
        ]
    if options.server == "hypercorn":
        recycling = ["--max-requests", str(options.max_requests)]
        return [
            _executable("hypercorn"),
            options.app_path,
            *("--bind", options.bind, "--workers", str(options.processes)),
            *(recycling if options.max_requests else []),
            *options.extra,
        ]
    if options.server == "daphne":
        host, port = split_bind(options.bind)
        return [
            _executable("daphne"),
            *("-b", host, "-p", str(port)),
            *options.extra,
            options.app_path,
        ]
    raise ConfigError(f"--server must be one of {', '.join(SERVERS)}, got {options.server!r}")


def _gunicorn(options: ServeOptions) -> list[str]:
    """gunicorn with the shipped configuration (postfork's hooks), for WSGI or ASGI."""
    recycling = ["--max-requests", str(options.max_requests)]
    if options.max_requests == 0:
        recycling += ["--max-requests-jitter", "0"]
    worker = _GUNICORN_WORKERS.get(options.server)
    app = [options.app_path] if worker or options.app else []
    return [
        _executable("gunicorn"),
        *("-c", str(GUNICORN_CONF), "--bind", options.bind, "--workers", str(options.processes)),
        *(["--worker-class", worker] if worker else []),
        *recycling,
        *options.extra,
        *app,
    ]


METRICS_DIR_PREFIX = "postfork-serve-metrics-"


def server_environment(url: DatabaseURL, options: ServeOptions) -> dict[str, str]:
    """The server's environment. Unless the caller chose one, a fresh directory for the
    workers' shared metrics files (see ``postfork.wsgi.metrics``; remove it with
    :func:`remove_metrics_dir` when the server has stopped)."""
    env = {
        **os.environ,
        environment.DATABASE_URL_VAR: url.render_secret(),
        "POSTFORK_CONNECT": options.connect,
        "POSTFORK_DRIVER": str(options.driver),
        "POSTFORK_BIND": options.bind,
    }
    if not env.get(environment.METRICS_DIR_VAR, "").strip():
        env[environment.METRICS_DIR_VAR] = tempfile.mkdtemp(prefix=METRICS_DIR_PREFIX)
    return env


def remove_metrics_dir(env: dict[str, str]) -> None:
    """Remove the metrics directory :func:`server_environment` created (never one the caller
    chose)."""
    path = env.get(environment.METRICS_DIR_VAR, "")
    if Path(path).name.startswith(METRICS_DIR_PREFIX):
        shutil.rmtree(path, ignore_errors=True)


def run(url: DatabaseURL, options: ServeOptions) -> int:
    """Run the server in the foreground until it exits or we are told to stop."""
    env = server_environment(url, options)
    server = subprocess.Popen(command(options), env=env)

    def forward(signum: int, _frame: object) -> None:
        server.send_signal(signum)  # only forwards: the server does the work

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    try:
        return server.wait()
    finally:
        remove_metrics_dir(env)
