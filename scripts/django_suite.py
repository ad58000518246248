"""Django's own test suite, from the source distribution of the installed Django, against the
``postfork.django`` backend and Django's stock MySQL backend in the same run; per-test results
side by side. Exits 1 when a test's result differs between the two without an explanation
below.

    .venv/bin/python scripts/django_suite.py [--python .venv/bin/python] [--json PATH]
                                             [--modules backends,basic,...]

The database: DATABASE_URL, else the local server on 127.0.0.1:3306 (root, no password).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "django-suite"
MODULES = (
    "backends",
    "basic",
    "transactions",
    "select_for_update",
    "queries",
    "model_fields",
    "aggregation",
    # async code: the async ORM, async views and Django's ASGI handler
    "async",
    "async_queryset",
    "asgi",
    "handlers",
)
BACKENDS = {"stock": "django.db.backends.mysql", "postfork": "postfork.django"}
# A test whose result differs between the backends for a reason that is not a defect.
EXPLAINED: dict[str, str] = {}
RESULT = re.compile(
    r"^(test\w*) \(([\w.]+)\)(?:\n(?!test)[^\n]*)? \.\.\. "
    r"(ok|FAIL|ERROR|skipped|expected failure|unexpected success)",
    re.MULTILINE,
)

SETTINGS = """
DATABASES = {{
    "default": {{**{base}, "NAME": "djtests", "TEST": {{"NAME": "test_djtests_{tag}"}}}},
    "other": {{**{base}, "NAME": "djtests_other", "TEST": {{"NAME": "test_djtests_o_{tag}"}}}},
}}
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
"""


def django_version(python: str) -> str:
    return subprocess.check_output(
        [python, "-c", "import django; print(django.get_version())"], text=True
    ).strip()


def suite(python: str, version: str) -> Path:
    """Django's tests/ from the sdist of ``version`` (downloaded once into .cache)."""
    tests = CACHE / f"django-{version}" / "tests"
    if tests.is_dir():
        return tests
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [python, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         f"django=={version}", "--dest", str(CACHE)],
        check=True,
    )  # fmt: skip
    archive = next(CACHE.glob(f"[Dd]jango-{version}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE, filter="data")
    return tests


def database_settings() -> dict[str, object]:
    sys.path.insert(0, str(ROOT / "src"))
    from postfork import parse_url

    url = parse_url(os.environ.get("DATABASE_URL") or "mysql://root@127.0.0.1:3306/test")
    return {
        "USER": url.user,
        "PASSWORD": url.password,
        "HOST": url.unix_socket or url.host,
        "PORT": "" if url.unix_socket else url.port,
    }


def run(python: str, tests: Path, backend: str, modules: list[str], tag: str) -> dict[str, str]:
    """Each test's result ("ok", "FAIL", "ERROR", "skipped", ...) under one backend."""
    base = {**database_settings(), "ENGINE": BACKENDS[backend]}
    if backend == "postfork":
        base["OPTIONS"] = {"pool": {"max_size": 8}}
    with tempfile.TemporaryDirectory(prefix="postfork-django-suite-") as scratch:
        (Path(scratch) / f"settings_{tag}.py").write_text(SETTINGS.format(base=base, tag=tag))
        env = {**os.environ, "PYTHONPATH": scratch}
        command = [
            python,
            "runtests.py",
            f"--settings=settings_{tag}",
            "--parallel",
            "1",
            "-v",
            "2",
        ]
        done = subprocess.run(
            [*command, *modules], cwd=tests, env=env, capture_output=True, text=True, timeout=1500
        )
    results = {test_id: status for _name, test_id, status in RESULT.findall(done.stderr)}
    if not results:
        raise SystemExit(f"no results parsed from {backend} run:\n{done.stderr[-3000:]}")
    return results


def counts(results: dict[str, str]) -> dict[str, int]:
    tally: dict[str, int] = {}
    for status in results.values():
        tally[status] = tally.get(status, 0) + 1
    return dict(sorted(tally.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="whose Django to test")
    parser.add_argument("--modules", default=",".join(MODULES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.python = os.path.abspath(args.python)  # the suite runs from Django's tests/ directory
    version = django_version(args.python)
    tests = suite(args.python, version)
    modules = [name for name in args.modules.split(",") if name]
    tag = version.replace(".", "_")
    runs, seconds = {}, {}
    for backend in BACKENDS:
        started = time.monotonic()
        runs[backend] = run(args.python, tests, backend, modules, f"{backend}_{tag}")
        seconds[backend] = round(time.monotonic() - started, 1)
    stock, ours = runs["stock"], runs["postfork"]
    differ = sorted(
        test for test in stock.keys() | ours.keys() if stock.get(test) != ours.get(test)
    )
    unexplained = [test for test in differ if test not in EXPLAINED]
    print(f"Django {version}, modules: {', '.join(modules)}")
    for backend in BACKENDS:
        tests_run, took = len(runs[backend]), seconds[backend]
        print(f"  {backend:<9} {tests_run:>5} tests in {took:>5} s  {counts(runs[backend])}")
    for test in differ:
        why = EXPLAINED.get(test, "UNEXPLAINED")
        print(f"  differs: {test}: stock {stock.get(test)}, postfork {ours.get(test)} ({why})")
    if not differ:
        print("  every test has the same result on both backends")
    if args.json:
        report = {
            "django": version,
            "modules": modules,
            "seconds": seconds,
            "counts": {backend: counts(results) for backend, results in runs.items()},
            "differences": {test: [stock.get(test), ours.get(test)] for test in differ},
            "failing_on_both": sorted(
                test for test, result in stock.items()
                if result in ("FAIL", "ERROR") and ours.get(test) == result
            ),
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
