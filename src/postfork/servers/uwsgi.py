"""uWSGI: its post-fork and exit hooks, its recycling limits, and the respawn accelerator.

uWSGI forks from C, so Python's at-fork hooks do not run there and its ``post_fork_hook`` is
used (gunicorn and ``multiprocessing`` fork with ``os.fork()``, which ``postfork.fork`` covers
with ``os.register_at_fork``).
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType

from .. import environment

log = logging.getLogger("postfork.server")


def _uwsgi() -> ModuleType | None:
    """The ``uwsgi`` module exists only inside a uWSGI process."""
    try:
        return sys.modules.get("uwsgi") or importlib.import_module("uwsgi")
    except ImportError:
        return None


def worker_id() -> int | None:
    """This process's uWSGI worker id (0 in the master), or None outside uWSGI."""
    uwsgi = _uwsgi()
    return None if uwsgi is None else int(uwsgi.worker_id())


# A new uWSGI worker runs its master's handlers (installed from C: for SIGINT and SIGTERM, the
# master's shutdown) until uWSGI installs the worker's own, after the post-fork hooks; both of
# those end the worker.
WORKER_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_signals_still_the_masters() -> tuple[signal.Signals, ...]:
    """In a uWSGI worker during its post-fork hooks: the stop signals whose handlers are still
    its master's, so that postfork's set-up can leave them to their default action (ending the
    worker, as the worker's own handlers will) instead of the master's shutdown run in the
    worker. Empty elsewhere."""
    return WORKER_STOP_SIGNALS if (worker_id() or 0) > 0 else ()


def hook(post_fork: Callable[[], None], at_exit: Callable[[bool], None]) -> bool:
    """Inside uWSGI, run ``post_fork`` in each worker right after its C-level fork and
    ``at_exit(orderly)`` when a process exits: ``orderly`` when max-requests recycled it (an
    orderly call after its last request), not when a signal stops it (uWSGI then runs the hook
    inside the C signal handler, on top of whatever Python code the signal interrupted).
    Returns False outside uWSGI."""
    uwsgi = _uwsgi()
    if uwsgi is None:
        return False
    _chain_uwsgi_post_fork(uwsgi, post_fork)
    _chain_atexit(uwsgi, at_exit)
    return True


# What a uWSGI 2.0 worker exits with when max-requests recycles it (its master logs "killed
# successfully" and respawns it, as for any worker that ends normally).
UWSGI_END_CODE = 30


def _chain_atexit(uwsgi: ModuleType, at_exit: Callable[[bool], None]) -> None:
    """Run ``at_exit`` after whatever ``uwsgi.atexit`` held. Then a worker that max-requests
    recycles leaves at once (see :func:`exit_now_if_recycled`), unless somebody chained a hook
    after ours (theirs would be skipped)."""
    previous = getattr(uwsgi, "atexit", None)

    def chained() -> None:
        if previous is not None:
            previous()
        try:
            orderly = _recycled(uwsgi)
        except Exception:  # asking uWSGI must never keep the exit hook from running
            orderly = False
        at_exit(orderly)
        if getattr(uwsgi, "atexit", None) is chained:
            exit_now_if_recycled(uwsgi)

    setattr(uwsgi, "atexit", chained)  # noqa: B010 (a module attribute uWSGI reads)


def exit_now_if_recycled(uwsgi: ModuleType) -> None:
    """In a worker recycled by max-requests, once the exit hooks ran: flush the logs and
    ``os._exit()`` with uWSGI's own code for it, instead of the C teardown that follows (its
    libraries' exit handlers, then, without ``skip-atexit-teardown``, the interpreter's). At 32
    processes on 2 busy cores that teardown cost 1.6 ms of CPU and ~5 ms of waiting for one, all
    of it between the old worker's last answer and its replacement's fork.
    ``POSTFORK_FAST_WORKER_EXIT=false`` turns it off; any other exit is left to uWSGI."""
    if not environment.fast_worker_exit() or not _recycled(uwsgi):
        return
    log.info("pid %d: recycled: exiting without teardown", os.getpid())
    try:
        if not _uwsgi_switch(uwsgi, "skip-atexit-teardown"):
            atexit._run_exitfuncs()  # what the interpreter's teardown would have run
        logging.shutdown()  # flushes every handler
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(UWSGI_END_CODE)


def _recycled(uwsgi: ModuleType) -> bool:
    """Whether this worker is leaving because uWSGI recycled it: its own test, requests since
    this worker's spawn at the limit and the worker old enough (min-worker-lifetime). A worker
    past its limit but too young is not recycling: a signal is stopping it, and this exit's
    hooks may run inside the handler, where the logs' locks must not be taken."""
    worker = uwsgi.worker_id()
    if worker <= 0:
        return False
    limit = _uwsgi_request_limit(uwsgi)
    try:
        state = uwsgi.workers()[worker - 1]
        served, spawned = int(state["delta_requests"]), int(state["last_spawn"])
    except (LookupError, TypeError, ValueError):
        return False
    old_enough = time.time() - spawned >= _min_worker_lifetime(uwsgi)
    return 0 < limit <= served and old_enough


def chain_after_request(callback: Callable[[], None]) -> bool:
    """Inside uWSGI, run ``callback`` after each request, once the response is sent; False
    outside uWSGI. uWSGI reads ``uwsgi.after_req_hook`` once, when the app has loaded: call this
    while the app loads (``postfork.install()`` does)."""
    uwsgi = _uwsgi()
    if uwsgi is None:
        return False
    _chain_attribute(uwsgi, "after_req_hook", callback)
    return True


def _chain_attribute(module: ModuleType, name: str, callback: Callable[[], None]) -> None:
    """uWSGI calls one callable stored in a module attribute: keep whoever was there first."""
    previous = getattr(module, name, None)

    def chained() -> None:
        if previous is not None:
            previous()
        callback()

    setattr(module, name, chained)


def _chain_uwsgi_post_fork(uwsgi: ModuleType, callback: Callable[[], None]) -> None:
    """Join uwsgidecorators' post-fork chain (what ``@postfork`` uses) so neither replaces
    the other; without a master that module refuses to load, so chain the hook by hand."""
    try:
        uwsgidecorators = importlib.import_module("uwsgidecorators")
    except Exception as exc:  # it raises a bare Exception when the master is disabled
        log.debug("uwsgidecorators unavailable (%s); chaining uwsgi.post_fork_hook", exc)
        _chain_attribute(uwsgi, "post_fork_hook", callback)
        return
    uwsgidecorators.postfork(callback)


def _wake_master(signum: int, frame: object) -> None:
    """Does nothing: its only effect is that the signal interrupts the uWSGI master's wait."""


def accelerate_respawns() -> bool:
    """In the uWSGI master: replace a dead worker at once instead of on the next tick.

    uWSGI's master reaps dead workers only when its event loop wakes, at the latest after its
    one-second check interval. With a SIGCHLD handler installed, a worker's exit interrupts
    that wait (EINTR, which uWSGI handles silently) and the loop goes straight to waitpid()
    and the respawn. The handler runs no code of its own and nothing is sent anywhere.
    """
    uwsgi = _uwsgi()
    if uwsgi is None or uwsgi.worker_id() != 0 or uwsgi.masterpid() != os.getpid():
        return False  # not the master (no master, a worker, a mule)
    if threading.current_thread() is not threading.main_thread():
        log.warning("respawn accelerator not installed: not on the master's main thread")
        return False
    current = signal.getsignal(signal.SIGCHLD)
    if current not in (signal.SIG_DFL, None, _wake_master):
        log.warning(
            "respawn accelerator not installed: SIGCHLD already has a handler (%r)", current
        )
        return False
    signal.signal(signal.SIGCHLD, _wake_master)
    log.info("uWSGI master pid %d: respawn accelerator on (SIGCHLD wakes the master)", os.getpid())
    return True


def drop_inherited_accelerator() -> None:
    """In a worker: restore the default SIGCHLD disposition the master had before us."""
    if signal.getsignal(signal.SIGCHLD) is _wake_master and (
        threading.current_thread() is threading.main_thread()
    ):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def exit_reason(requests_served: int) -> str:
    """Why a worker is exiting, as far as the server lets us know (for its exit log line)."""
    uwsgi = _uwsgi()
    if uwsgi is None or uwsgi.worker_id() <= 0:
        return "process exit"
    limit = _uwsgi_request_limit(uwsgi)
    if 0 < limit <= requests_served:
        return f"max-requests ({limit}) reached"
    return "stopped or reloaded by the server"


UWSGI_MIN_WORKER_LIFETIME_DEFAULT = 10  # seconds, uWSGI 2.0.31


def recycling_warnings() -> list[str]:
    """Under uWSGI with ``max-requests``, what will not recycle as the user thinks: a
    ``min-worker-lifetime`` above 0 (10 s unless set) means no worker is recycled younger than
    that, whatever max-requests says; several processes with ``max-requests-delta`` 0 reach
    their limit together under an even load and are replaced at once."""
    uwsgi = _uwsgi()
    if uwsgi is None or _uwsgi_number(uwsgi, "max-requests") <= 0:
        return []
    found = []
    explicit = uwsgi.opt.get("min-worker-lifetime") is not None
    lifetime = _min_worker_lifetime(uwsgi)
    if lifetime:
        where = "" if explicit else ", uWSGI's default"
        found.append(
            f"max-requests is set but min-worker-lifetime is {lifetime} s{where}: uWSGI "
            f"recycles no worker younger than that, so under load workers outlive max-requests "
            f"and then recycle together; set min-worker-lifetime = 0 to recycle at max-requests "
            f"alone"
        )
    processes = _uwsgi_number(uwsgi, "processes") or _uwsgi_number(uwsgi, "workers")
    if processes > 1 and _uwsgi_number(uwsgi, "max-requests-delta") == 0:
        limit = _uwsgi_number(uwsgi, "max-requests")
        found.append(
            f"max-requests is {limit} with max-requests-delta 0 and {processes} processes: "
            f"workers that start together recycle together; set max-requests-delta (about "
            f"{max(1, limit // processes)}: worker N then recycles after max-requests + "
            f"(N - 1) x delta) so one is replaced at a time"
        )
    return found


_warned_pid = 0  # the process that said it (a master says it once)


def warn_about_recycling_once(*, server_log: bool = False) -> None:
    """The warning above, said where the user looks: the server's log. Called in the master
    only (``install()`` there, or ``postfork.accelerate`` with lazy-apps): one line per server.
    ``server_log``: through uWSGI's own logger, for a shared import, which runs before the
    app has configured Python's logging."""
    global _warned_pid
    if _warned_pid == os.getpid():
        return
    _warned_pid = os.getpid()
    uwsgi = _uwsgi()
    for warning in recycling_warnings():
        if server_log and uwsgi is not None:
            uwsgi.log(f"postfork WARNING: {warning}")
        else:
            log.warning("%s", warning)


def _uwsgi_request_limit(uwsgi: ModuleType) -> int:
    """This worker's max-requests: uWSGI adds (worker id - 1) x max-requests-delta."""
    limit = _uwsgi_number(uwsgi, "max-requests")
    if limit > 0:
        limit += (uwsgi.worker_id() - 1) * _uwsgi_number(uwsgi, "max-requests-delta")
    return limit


def _min_worker_lifetime(uwsgi: ModuleType) -> int:
    if uwsgi.opt.get("min-worker-lifetime") is None:
        return UWSGI_MIN_WORKER_LIFETIME_DEFAULT
    return _uwsgi_number(uwsgi, "min-worker-lifetime")


def _uwsgi_text(uwsgi: ModuleType, option: str, default: str) -> str:
    """An option as uWSGI holds it (``True`` for a bare flag), as text."""
    value = uwsgi.opt.get(option, default)
    if isinstance(value, list):
        value = value[-1]  # repeated option: the last one wins, as in uWSGI
    return value.decode() if isinstance(value, bytes) else str(value)


def _uwsgi_switch(uwsgi: ModuleType, option: str) -> bool:
    return _uwsgi_text(uwsgi, option, "false").lower() in ("1", "true", "yes", "on")


def _uwsgi_number(uwsgi: ModuleType, option: str) -> int:
    text = _uwsgi_text(uwsgi, option, "0")
    return int(text) if text.isdigit() else 0
