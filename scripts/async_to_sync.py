#!/usr/bin/env python3
"""Write the thread pool's shell from the asyncio pool's: one source, two faces.

``src/postfork/pool/pool_async.py`` is the source; ``src/postfork/pool/pool.py`` is generated
from it (after httpcore's ``scripts/unasync.py`` and psycopg_pool's ``tools/async_to_sync.py``):

- words are replaced (``async def`` -> ``def``, ``await x`` -> ``x``, ``AsyncPool`` -> ``Pool``,
  ``TaskWaiters`` -> ``ThreadWaiters``... see ``WORDS``), in code and docstrings alike;
- what only asyncio needs is dropped: a line whose comment begins ``# async only``, and the
  lines from ``# async only: begin`` to ``# async only: end``.

    python scripts/async_to_sync.py          # writes pool.py
    python scripts/async_to_sync.py --check  # exits 1 when pool.py is not what the source gives

``make test`` runs the check, so the two cannot drift.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

POOL = Path(__file__).resolve().parent.parent / "src" / "postfork" / "pool"
SOURCE, TARGET = POOL / "pool_async.py", POOL / "pool.py"

# (pattern, replacement), applied in order to every kept line
WORDS: list[tuple[str, str]] = [
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\bafire\b", "fire"),
    (r"\bload_async_driver\b", "load_driver"),
    (r"\bTaskWaiters\b", "ThreadWaiters"),
    (r"\bAsync([A-Z]\w*)", r"\1"),
    (r"``async with pool\.connection\(\) as conn:``", "``with pool.connection() as conn:``"),
    (r"\basyncmy\b", "mysqlclient"),
    (r"``mysql\+mysqlclient://``, ``mysql\+aiomysql://``", "``mysql+mysqldb://``, ``mysql+pymysql://``"),
    (r"aiomysql\b", "pymysql"),
    (r"asyncio pool", "thread pool"),
    (r"postfork-refills", "postfork-upkeep"),
]
_ASYNC_ONLY = re.compile(r"#\s*async only\b")
_MODULE_DOCSTRING = re.compile(r'\A"""(.*?)"""\n', re.DOTALL)
TARGET_DOCSTRING = (
    '"""The thread pool: ``Pool`` and its ``Lease``, a shell of I/O around ``PoolCore``.\n\n'
    "Generated from ``pool_async.py`` (the asyncio pool, the one source of both shells): every\n"
    "decision is the core's; here is only what does I/O or waits, blocking the calling thread.\n"
    '"""\n'
)
_BEGIN, _END = "# async only: begin", "# async only: end"


def header(source: Path) -> str:
    return (
        f"# Generated from {source.name} by scripts/async_to_sync.py: edit {source.name} and "
        "run it again.\n"
    )


def convert(text: str, source: Path = SOURCE) -> str:
    """The thread shell's text for the asyncio shell's ``text``."""
    kept: list[str] = []
    skipping = False
    docstring = _MODULE_DOCSTRING.match(text)
    if docstring:  # the module docstring is the target's own, not the source's converted
        text = text[docstring.end() :]
        kept.append(TARGET_DOCSTRING)
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped == _BEGIN:
            skipping = True
            continue
        if stripped == _END:
            skipping = False
            continue
        if skipping or _ASYNC_ONLY.search(line):
            continue
        for pattern, replacement in WORDS:
            line = re.sub(pattern, replacement, line)
        kept.append(line)
    if skipping:
        raise SystemExit(f"{source}: '{_BEGIN}' without '{_END}'")
    return header(source) + _squeeze_blank_lines("".join(kept))


def _squeeze_blank_lines(text: str) -> str:
    """No more than two blank lines in a row where a dropped block left more."""
    return re.sub(r"\n{4,}", "\n\n\n", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is stale")
    args = parser.parse_args(argv)
    wanted = convert(SOURCE.read_text())
    if args.check:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current == wanted:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True), wanted.splitlines(keepends=True),
            str(TARGET), f"{TARGET} (from {SOURCE.name})",
        )  # fmt: skip
        sys.stdout.writelines(diff)
        print(f"{TARGET} is stale: run python scripts/async_to_sync.py", file=sys.stderr)
        return 1
    TARGET.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
