"""MkDocs hook: the support matrix page's table, from pyproject.toml's extras (what is claimed),
noxfile.py's LOWS (the lowest versions, run by make test-lows) and the installed distributions
(the newest, what make test ran with in this environment)."""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MARK = "<!-- support-matrix -->"
SHOWN = (
    "mysqlclient", "PyMySQL", "asyncmy", "aiomysql", "SQLAlchemy", "Flask-SQLAlchemy",
    "Django", "uWSGI", "gunicorn", "uvicorn", "uvicorn-worker", "hypercorn", "FastAPI",
    "prometheus_client",
)  # fmt: skip


def claimed() -> dict[str, str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project, groups = pyproject["project"], pyproject["dependency-groups"]
    found: dict[str, str] = {}
    requirements = [r for extra in project["optional-dependencies"].values() for r in extra]
    requirements += [r for r in groups["test"] if isinstance(r, str)]
    tools = tomllib.loads((ROOT / "tools" / "pyproject.toml").read_text())["project"]
    requirements += tools["dependencies"]  # the servers: postfork-tools runs them
    for requirement in requirements:
        match = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?\s*([<>=!~].*)?$", requirement)
        if match and match.group(1).lower() != "postfork":
            found.setdefault(match.group(1).lower(), match.group(2) or "any")
    return found


def lows() -> dict[str, str]:
    """noxfile.py's LOWS, read without importing nox."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "LOWS":
            found = ast.literal_eval(node.value)
            return {name.lower(): version for name, version in found.items()}
    raise RuntimeError("noxfile.py defines no LOWS")


def installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def mariadb() -> str:
    try:
        out = subprocess.run(["mariadbd", "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "not installed"
    match = re.search(r"Ver (\S+)", out.stdout)
    return match.group(1) if match else out.stdout.strip()


def table() -> str:
    wanted, lowest = claimed(), lows()
    rows = [
        "| | claimed | lowest tested (make test-lows) | newest tested (make test) |",
        "| --- | --- | --- | --- |",
    ]
    for name in SHOWN:
        low = lowest.get(name.lower(), "")
        rows.append(f"| {name} | {wanted.get(name.lower(), 'any')} | {low} | {installed(name)} |")
    rows.append(f"| MariaDB server | 10.11 | | {mariadb()} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if MARK in markdown:
        return markdown.replace(MARK, table())
    return markdown
