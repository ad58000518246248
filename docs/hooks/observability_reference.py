"""MkDocs hook: the reference of every metric and every log line, read from the library's
source (the ``Counter``/``Gauge``/``Histogram`` it declares, and each call on a logger made by
``logging.getLogger("postfork...")``), so the page cannot drift from the code."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "src" / "postfork"
METRICS_MARK = "<!-- metrics-reference -->"
LOGS_MARK = "<!-- log-reference -->"
KINDS = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram"}
LEVELS = ("debug", "info", "warning", "error", "exception", "critical")


def _text(node: ast.AST) -> str:
    """A literal string argument, or an f-string with its fields shown as ``{...}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value if isinstance(part, ast.Constant) else "{...}" for part in node.values
        )
    return "(computed)"


def _sources() -> list[tuple[Path, ast.Module]]:
    return [
        (path, ast.parse(path.read_text()))
        for path in sorted(LIBRARY.rglob("*.py"))
        if "__pycache__" not in path.parts
    ]


def metrics() -> list[tuple[str, str, str, str]]:
    """(name, type, help, module) of every metric the library declares."""
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in KINDS and _text(node.args[0]).startswith("postfork_"):
                module = str(path.relative_to(ROOT / "src"))
                found.append((_text(node.args[0]), KINDS[name], _text(node.args[1]), module))
    return sorted(found)


def log_lines() -> list[tuple[str, str, str, str]]:
    """(logger, level, message, module) of every log call on a ``postfork.*`` logger."""
    found = []
    for path, tree in _sources():
        loggers: dict[str, str] = {}
        for node in ast.walk(tree):  # module-level: name = logging.getLogger("postfork...")
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "attr", "") == "getLogger"
                and node.value.args
                and _text(node.value.args[0]).startswith("postfork")
                and isinstance(node.targets[0], ast.Name)
            ):
                loggers[node.targets[0].id] = _text(node.value.args[0])
        module = str(path.relative_to(ROOT / "src"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            if (  # log.warning("...", ...)
                isinstance(func, ast.Attribute)
                and func.attr in LEVELS
                and isinstance(func.value, ast.Name)
                and func.value.id in loggers
            ):
                level, logger, message = func.attr, loggers[func.value.id], node.args[0]
            elif (  # announce(log, "...", ...): INFO, in the server's log whatever the set-up
                getattr(func, "id", "") == "announce"
                and len(node.args) > 1
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in loggers
            ):
                level, logger, message = "info", loggers[node.args[0].id], node.args[1]
            else:
                continue
            if _text(message) != "(computed)":
                level = level.upper().replace("EXCEPTION", "ERROR")
                found.append((logger, level, _text(message), module))
    return sorted(found, key=lambda row: (row[0], LEVELS.index(row[1].lower()), row[3]))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if METRICS_MARK in markdown:
        rows = ["| metric | type | meaning | declared in |", "| --- | --- | --- | --- |"]
        rows += [f"| `{n}` | {k} | {_cell(h)} | `{m}` |" for n, k, h, m in metrics()]
        markdown = markdown.replace(METRICS_MARK, "\n".join(rows))
    if LOGS_MARK in markdown:
        rows = ["| logger | level | message | logged in |", "| --- | --- | --- | --- |"]
        rows += [f"| `{g}` | {v} | `{_cell(t)}` | `{m}` |" for g, v, t, m in log_lines()]
        markdown = markdown.replace(LOGS_MARK, "\n".join(rows))
    return markdown
