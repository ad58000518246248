"""Where this process runs: a uWSGI or gunicorn master or worker, a worker of an ASGI server
that spawns its workers (uvicorn, hypercorn, daphne), or no server at all."""

from __future__ import annotations

import enum
import sys

from . import gunicorn, uwsgi


class Role(enum.Enum):
    MASTER = "master"  # loads the app, then forks workers: must hold no connection
    WORKER = "worker"  # serves requests: warm before the first one
    STANDALONE = "standalone"  # no pre-fork server: a script, a dev server, a test


def detect() -> tuple[str, Role]:
    """(server name, role of this process): "uwsgi", "gunicorn" or "none"."""
    worker_id = uwsgi.worker_id()
    if worker_id is not None:
        return "uwsgi", Role.WORKER if worker_id > 0 else Role.MASTER
    in_arbiter = gunicorn.in_arbiter()
    if in_arbiter is not None:
        return "gunicorn", Role.MASTER if in_arbiter else Role.WORKER
    return "none", Role.STANDALONE


# The module each ASGI server has imported by the time it imports the app it serves (in every
# worker it spawns: each one imports the app afresh).
_ASGI_SERVER_MODULES = (
    ("uvicorn", "uvicorn.server"),
    ("hypercorn", "hypercorn.asyncio.run"),
    ("daphne", "daphne.server"),
)


def serving() -> str | None:
    """The server whose requests this process serves (a uWSGI or gunicorn worker, or a process
    of uvicorn, hypercorn or daphne), None otherwise (a master, a script, ``manage.py``)."""
    return _serving(*detect())


def _serving(server: str, role: Role) -> str | None:
    if role is Role.WORKER:
        return server
    if role is Role.MASTER:
        return None
    for name, module in _ASGI_SERVER_MODULES:
        if module in sys.modules:
            return name
    return None


# gunicorn's asyncio worker classes (uvicorn's, in either of its homes, and gunicorn's own
# ``-k asgi``): the arbiter imports the class before it loads the app, so it knows too
_GUNICORN_ASGI_WORKERS = ("uvicorn_worker", "uvicorn.workers", "gunicorn.workers.gasgi")


def serves_concurrently() -> bool:
    """Whether requests are served several at a time, each on a thread or task of its own, by
    this process or by the workers this gunicorn arbiter forks: an ASGI server's."""
    server, role = detect()
    if server == "gunicorn":
        return any(name in sys.modules for name in _GUNICORN_ASGI_WORKERS)
    return server != "uwsgi" and _serving(server, role) is not None
