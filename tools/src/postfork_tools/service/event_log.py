"""Each worker's warm-up as a JSON line in a file (``POSTFORK_EVENT_LOG``): the bench times
respawns from these records, not from the wording of a log line."""

from __future__ import annotations

import os

from postfork.install import WarmReport


class EventLog:
    """An ``on_warm`` listener: appends each WarmReport to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, report: WarmReport) -> None:
        line = (report.to_json() + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write of one short line: appends from workers never mix
        finally:
            os.close(fd)
