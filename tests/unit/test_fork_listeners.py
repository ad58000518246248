"""A post-fork listener may hand work to a thread pool (Django's ASGI handler warming a new
worker does): in the child, the standard library's thread-pool lock must be usable by then,
whatever was imported first. In a fresh interpreter, so the import order is the one a user's
app has: postfork first, the thread pools later."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

CHILD_SECONDS = 10  # the child's own alarm: a deadlocked listener would never return

SCRIPT = textwrap.dedent(
    f"""
    import os, signal, sys
    import postfork.fork as fork
    from concurrent.futures import ThreadPoolExecutor  # imported after postfork

    class Listener:
        def after_fork(self):
            signal.alarm({CHILD_SECONDS})  # the child's own bound (alarms are not inherited)
            with ThreadPoolExecutor(1) as pool:
                print("child:", pool.submit(lambda: 42).result(), flush=True)

    listener = Listener()
    fork.add_listener(listener)
    with ThreadPoolExecutor(1) as warm:  # the parent has used a thread pool before forking
        warm.submit(int).result()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
    """
)


def test_a_listener_can_use_a_thread_pool_in_the_child() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=CHILD_SECONDS * 3
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "child: 42" in done.stdout


STOP_SCRIPT = textwrap.dedent(
    """
    import logging, os, signal, sys, time
    import postfork.fork as fork

    logging.basicConfig(level=logging.INFO)
    # what a server's child inherits: a handler of its parent's that only queues the signal
    # (gunicorn's arbiter), so the child would never stop on its own
    signal.signal(signal.SIGTERM, lambda number, frame: None)
    ready_r, ready_w = os.pipe()

    class SlowWarmUp:
        def after_fork(self):
            os.write(ready_w, b"x")  # the parent sends SIGTERM now, mid-warm-up
            time.sleep(1.0)
            print("warm-up finished", flush=True)

    class ExitListener:
        def at_exit(self):
            if "--second-signal" in sys.argv:  # uWSGI's master: SIGINT after the group's SIGTERM
                os.kill(os.getpid(), signal.SIGINT)
            print("exit listeners ran", flush=True)

    warm_up, goodbye = SlowWarmUp(), ExitListener()
    fork.add_listener(warm_up)
    fork.add_exit_listener(goodbye)
    pid = os.fork()
    if pid == 0:
        print("the child went on serving", flush=True)
        os._exit(0)
    os.read(ready_r, 1)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    print("child status", os.waitstatus_to_exitcode(status), flush=True)
    """
)


@pytest.mark.parametrize("second_signal", [False, True], ids=["one", "a-second-while-leaving"])
def test_a_stop_signal_during_the_warm_up_is_obeyed_once_it_ends(second_signal: bool) -> None:
    """A second stop signal while the worker leaves (uWSGI's master sends SIGINT to workers that
    the group's SIGTERM already reached) must not cut the exit short."""
    argv = ["--second-signal"] if second_signal else []
    done = subprocess.run(
        [sys.executable, "-c", STOP_SCRIPT, *argv], capture_output=True, text=True, timeout=30
    )
    lines = done.stdout.splitlines()[:3]  # then the parent's own exit
    assert lines == [
        "warm-up finished",  # not cut short: the connections it opens stay consistent
        "exit listeners ran",  # its connections closed cleanly
        f"child status {-signal.SIGTERM}",  # then ended by the signal, as the sender meant
    ], (lines, done.stderr[-2000:])
    assert "SIGTERM arrived while this worker set itself up" in done.stderr
