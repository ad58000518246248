"""A post-fork listener may hand work to a thread pool (Django's ASGI handler warming a new
worker does): in the child, the standard library's thread-pool lock must be usable by then,
whatever was imported first. In a fresh interpreter, so the import order is the one a user's
app has: postfork first, the thread pools later."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
