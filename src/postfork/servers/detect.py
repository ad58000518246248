"""Where this process runs: a uWSGI or gunicorn master or worker, or no pre-fork server at all."""

from __future__ import annotations

import enum

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
