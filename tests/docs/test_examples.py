"""Every Python example in the README, CONTRIBUTING.md and the documentation site, kept honest:
each block says what the tests do with it, in an HTML comment on the line above it (invisible
on GitHub and on the site):

- ``<!-- example: run -->``: run as a file of its own against a real, seeded MariaDB (and
  served one request when it defines a WSGI ``application``);
- ``<!-- example: continue -->``: the same, after the page's previous examples (a page that
  builds one program step by step);
- ``<!-- example: file PATH -->``: the block is the repository's file PATH, verbatim; the tests
  that serve it (tests/asgi/test_examples.py) run that file;
- ``<!-- example: skip: WHY -->``: cannot run alone (settings, several servers); WHY says
  which test runs the same code.

A block without a marker fails here, so no example can drift from the code unnoticed."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from postfork.integrations.sqlalchemy import engine_url
from postfork_tools.embedded import EmbeddedMariaDB
from tests.e2e.conftest import service_db  # noqa: F401  (seeded: accounts 1..50)

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"<!-- example: (run|continue|file (\S+)|skip: (.+?)) -->")


@dataclasses.dataclass(frozen=True)
class Example:
    page: Path
    line: int
    kind: str  # run, continue, file, skip, or "" when unmarked
    argument: str  # file: its path; skip: why
    code: str
    before: tuple[str, ...] = ()  # continue: the page's earlier examples, in order

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples() -> list[Example]:
    found: list[Example] = []
    for page in PAGES:
        text = page.read_text()
        chain: list[str] = []
        for block in BLOCK.finditer(text):
            line = text.count("\n", 0, block.start()) + 1
            above = text[: block.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = MARKER.fullmatch(above.strip())
            kind = "" if marker is None else marker.group(1).split(" ", 1)[0].rstrip(":")
            argument = "" if marker is None else (marker.group(2) or marker.group(3) or "")
            code = block.group(1)
            found.append(Example(page, line, kind, argument, code, tuple(chain)))
            if kind == "run":
                chain = [code]
            elif kind == "continue":
                chain.append(code)
    return found


EXAMPLES = examples()
RUNNABLE = [e for e in EXAMPLES if e.kind in ("run", "continue")]


def test_every_python_example_says_what_the_tests_do_with_it() -> None:
    assert EXAMPLES, "no example found: the pattern is wrong"
    unmarked = [e.name for e in EXAMPLES if not e.kind]
    marker = "<!-- example: run|continue|file PATH|skip: WHY -->"
    assert unmarked == [], f"add {marker} above {unmarked}"
    orphans = [e.name for e in EXAMPLES if e.kind == "continue" and not e.before]
    assert orphans == [], f"'continue' with no earlier example on its page: {orphans}"


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.kind == "file"], ids=lambda e: e.name)
def test_a_quoted_file_is_quoted_as_it_is(example: Example) -> None:
    assert (ROOT / example.argument).read_text() == example.code


@pytest.mark.parametrize("example", RUNNABLE, ids=lambda e: e.name)
def test_each_example_runs_against_mariadb(
    example: Example,
    service_db: EmbeddedMariaDB,  # noqa: F811
    tmp_path: Path,
) -> None:
    script = tmp_path / "example.py"
    script.write_text("\n".join([*example.before, example.code]))
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": service_db.url.render_secret(),
        "SQLALCHEMY_URL": engine_url(service_db.url).render_as_string(hide_password=False),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        "PYTHONPATH": str(ROOT),
    }
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "docs" / "run_example.py"), str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, f"{example.name} failed:\n{run.stdout}\n{run.stderr}"
    assert "[WARNING] postfork" not in run.stderr, f"{example.name} warned:\n{run.stderr}"
