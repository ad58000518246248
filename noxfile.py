"""The support matrix, run: each session installs postfork and postfork-tools with one set of
pinned versions and runs the tests that exercise them against real MariaDB. ``lows`` pins the
lowest versions ``pyproject.toml`` claims; the highest are what ``make test`` installs (the
newest releases). The docs' support page reads ``LOWS`` and the tests below from this file, so
it shows what CI runs (``make test-lows``, in ``.ci/run``).

    nox -s lows
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False

# the lowest versions of what postfork's extras and its tests' frameworks claim
LOWS = {
    "SQLAlchemy": "2.0.16",  # Flask-SQLAlchemy 3.1 needs it
    "Flask-SQLAlchemy": "3.1.0",
    "Django": "4.2",
    "mysqlclient": "2.2.0",
    "PyMySQL": "1.1.0",
    "gunicorn": "22.0.0",
    "uWSGI": "2.0.28",
    "prometheus_client": "0.20.0",
}
# what exercises them: the pool on both drivers, SQLAlchemy and Django on postfork, TLS on both
# drivers, and the ORM apps under uWSGI and gunicorn with recycling
LOW_TESTS = (
    "tests/unit",
    "tests/integration/test_pool_mysql.py",
    "tests/integration/test_sqlalchemy.py",
    "tests/integration/test_sqlalchemy_async.py",
    "tests/integration/test_django.py",
    "tests/integration/test_tls.py",
    "tests/integration/test_fork_safety.py",
    "tests/e2e/test_orm_apps.py",
)


@nox.session  # the interpreter that runs nox (make: .venv's), whatever python3.11 is on PATH
def lows(session: nox.Session) -> None:
    constraints = session.create_tmp() + "/lows.txt"
    with open(constraints, "w") as out:
        out.writelines(f"{name}=={version}\n" for name, version in LOWS.items())
    session.install("pip>=25.1")  # dependency groups (--group)
    session.install("-c", constraints, "-e", ".", "-e", "./tools", "--group", "test")
    session.run(
        "python", "-c",
        "import importlib.metadata as m, sys; pins = sys.argv[1:]; "
        "wrong = [p for p in pins if m.version(p.split('==')[0]) != p.split('==')[1]]; "
        "sys.exit(f'not the pinned lows: {wrong}' if wrong else 0)",
        *(f"{name}=={version}" for name, version in LOWS.items()),
    )  # fmt: skip
    session.run("pytest", "-q", "-p", "no:randomly", *LOW_TESTS, *session.posargs)
