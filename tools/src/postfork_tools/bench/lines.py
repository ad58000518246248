"""The bench's helper processes (the delay proxy, the load generator's null server) talk to the
process that started them in lines on stdout: ``LISTEN host:port``, ``OK <command>``, counters
as JSON. A channel read by code, not a log: written whole and flushed, one line at a time."""

from __future__ import annotations

import sys


def send_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
