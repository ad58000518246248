"""The two distributions as a user gets them: ``python -m build`` makes an sdist and a wheel of
postfork (the library) and of postfork-tools (tools/) without writing into the checkout,
``twine check --strict`` accepts all four, the library's wheel holds the library only, and in
a fresh virtualenv it imports every public module with only the extras each needs, runs the
README's quick start against MariaDB, and its ``postfork`` command says where the tools'
commands come from until postfork-tools is installed beside it (make test-dist)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from postfork import DatabaseURL, Pool

ROOT = Path(__file__).resolve().parents[2]
LIBRARY_ONLY = ("postfork/tools/", "postfork/bench/", "postfork/service/", "postfork/deploy/")
NEEDS_NOTHING = (
    "postfork", "postfork.pool", "postfork.topology", "postfork.install", "postfork.gunicorn",
    "postfork.accelerate", "postfork.wsgi", "postfork.asgi", "postfork.cli",
    "postfork.doctor.report", "postfork.doctor.budget", "postfork.doctor.forkcheck",
)  # fmt: skip
pytestmark = pytest.mark.timeout(900)


def tree(root: Path) -> set[str]:
    """Every file under src/ and tools/ but caches: what a build must not add to."""
    return {
        str(path.relative_to(root))
        for top in ("src", "tools")
        for path in (root / top).rglob("*")
        if "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    before = tree(ROOT)
    for project in (ROOT, ROOT / "tools"):
        run(sys.executable, "-m", "build", "--outdir", str(out), str(project))
    assert tree(ROOT) == before, "the build wrote into the checkout"
    return out


def run(
    *argv: str, env: dict[str, str] | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    if ok:
        assert done.returncode == 0, f"{argv}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A virtualenv with pip and nothing else."""
    home = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(home)
    yield home / "bin"


def wheel(built: Path, name: str) -> Path:
    (found,) = built.glob(f"{name}-*.whl")
    return found


def test_twine_accepts_both_sdists_and_wheels(built: Path) -> None:
    artifacts = sorted(str(p) for p in built.iterdir())
    assert len(artifacts) == 4, artifacts
    run(sys.executable, "-m", "twine", "check", "--strict", *artifacts)


def test_the_library_wheel_holds_the_library_only(built: Path) -> None:
    names = zipfile.ZipFile(wheel(built, "postfork")).namelist()
    assert [n for n in names if n.startswith(LIBRARY_ONLY)] == []
    shipped = {n for n in names if n.startswith("postfork/") and n.endswith(".py")}
    source = {
        str(p.relative_to(ROOT / "src"))
        for p in (ROOT / "src" / "postfork").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert shipped == source
    tools = zipfile.ZipFile(wheel(built, "postfork_tools")).namelist()
    assert "postfork_tools/deploy/uwsgi.ini" in tools
    assert not [n for n in tools if n.startswith("postfork/")]


def test_a_fresh_virtualenv_imports_and_runs_the_library(
    built: Path, fresh: Path, database_url: DatabaseURL
) -> None:
    library = wheel(built, "postfork")
    run(str(fresh / "pip"), "install", "--quiet", str(library))
    for module in NEEDS_NOTHING:
        run(str(fresh / "python"), "-c", f"import {module}")
    help_text = run(str(fresh / "postfork"), "--help").stdout
    assert "doctor" in help_text and "bench" in help_text
    bench = run(str(fresh / "postfork"), "bench", "--quick", ok=False)
    assert bench.returncode == 2
    assert "postfork bench comes with postfork-tools: pip install postfork-tools" in bench.stderr
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    doctor = run(str(fresh / "postfork"), "doctor", env=env, ok=False)
    assert doctor.returncode == 2 and "pass --database-url or set DATABASE_URL" in doctor.stderr

    # each integration with its extra alone, then the README's quick start on MariaDB
    missing = run(str(fresh / "python"), "-c", "import postfork.sqlalchemy", ok=False)
    assert "pip install 'postfork[sqlalchemy]'" in missing.stderr
    for extra, module in (("sqlalchemy", "postfork.sqlalchemy"), ("django", "postfork.django")):
        run(str(fresh / "pip"), "install", "--quiet", f"{library}[{extra}]")
        run(str(fresh / "python"), "-c", f"import {module}")
    has_greenlet = run(str(fresh / "python"), "-c", "import greenlet", ok=False).returncode == 0
    if not has_greenlet:  # SQLAlchemy 2.1+ brings greenlet only with its asyncio extra
        async_engine = (
            "import postfork.sqlalchemy as s; s.create_async_engine('mysql+asyncmy://h/d')"
        )
        no_greenlet = run(str(fresh / "python"), "-c", async_engine, ok=False)
        assert "pip install 'postfork[sqlalchemy-async]'" in no_greenlet.stderr, no_greenlet.stderr
    run(str(fresh / "pip"), "install", "--quiet", f"{library}[mysqlclient]")
    quick_start = (ROOT / "README.md").read_text().split("# app.py\n", 1)[1].split("```", 1)[0]
    script = (
        "import wsgiref.util\n" + quick_start + "\nenviron = {}\n"
        "wsgiref.util.setup_testing_defaults(environ)\n"
        "answer = []\n"
        "body = application(environ, lambda status, headers: answer.append(status))\n"
        "print(answer[0], b''.join(body))\n"
    )
    url = dataclasses.replace(database_url, database="postfork_dist")
    with Pool(database_url, min_idle=0, autocommit=True) as pool, pool.connection() as conn:
        cursor = conn.cursor()
        cursor.execute("CREATE DATABASE IF NOT EXISTS postfork_dist")
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS postfork_dist.accounts (id INT PRIMARY KEY, name TEXT)"
        )
        cursor.execute("REPLACE INTO postfork_dist.accounts VALUES (42, 'answer')")
    env = {**os.environ, "DATABASE_URL": url.render_secret()}
    served = run(str(fresh / "python"), "-c", script, env=env).stdout
    assert served.startswith("200 OK") and "answer" in served, served


def test_postfork_tools_adds_its_commands_to_postfork(built: Path, fresh: Path) -> None:
    run(str(fresh / "pip"), "install", "--quiet", str(wheel(built, "postfork")) + "[mysqlclient]")
    run(str(fresh / "pip"), "install", "--quiet", str(wheel(built, "postfork_tools")))
    help_text = run(str(fresh / "postfork"), "--help").stdout
    assert "(postfork-tools)" not in help_text, help_text
    run(str(fresh / "postfork"), "db", "--help")
    imports = "import postfork_tools.service.app, postfork_tools.bench.suite"
    run(str(fresh / "python"), "-c", imports)
