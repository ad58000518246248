"""The command's output: results on stdout, line by line (the only place that prints them)."""

from __future__ import annotations


def say(line: str) -> None:
    print(line, flush=True)
