"""postfork's lines reach stderr while the app has configured no logging (WARNINGs, and each
worker's warm line at INFO), and step aside once it has. In a fresh interpreter: logging's
configuration is process-wide."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import logging
    import postfork
    from postfork.log_output import announce

    logging.getLogger("postfork.server").warning("a warning before any configuration")
    logging.getLogger("postfork.access").info("a line per request: never by default")
    announce(logging.getLogger("postfork.install"), "pid %d: warm in %s", 7, "1.0 ms")
    logging.basicConfig(level=logging.WARNING, format="APP %(levelname)s %(name)s %(message)s")
    logging.getLogger("postfork.server").warning("a warning after the app's configuration")
    announce(logging.getLogger("postfork.install"), "an INFO line the app did not ask for")
    """
)


def test_warnings_and_the_warm_line_reach_stderr_until_the_app_configures_logging() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stderr.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].endswith("[WARNING] postfork.server: a warning before any configuration")
    assert lines[1].endswith("[INFO] postfork.install: pid 7: warm in 1.0 ms")
    assert "] [" in lines[0]  # [time] [pid] [LEVEL]: the shape of gunicorn's own lines
    assert lines[2] == "APP WARNING postfork.server a warning after the app's configuration"
