"""Runs one documentation example as a server loads an app: imported as a module (so code
that waits for the app's import to finish, ``postfork.install()``'s warm-up, runs as it would
under uWSGI or gunicorn), then, when it defines a WSGI ``application``, serves it one request
(wsgiref's test environ) and fails unless it is a 200.

    python tests/docs/run_example.py example.py
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from wsgiref.util import setup_testing_defaults


def serve_once(application: object) -> None:
    environ: dict[str, object] = {}
    setup_testing_defaults(environ)
    answers: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None):
        answers.append(status)
        return lambda data: None

    body = b"".join(application(environ, start_response))  # type: ignore[operator]
    if not answers or not answers[0].startswith("200"):
        raise SystemExit(f"the example's application answered {answers}: {body[:500]!r}")
    print(f"application answered {answers[0]}: {body[:200]!r}")


def main(path: str) -> None:
    file = Path(path).resolve()
    sys.path.insert(0, str(file.parent))
    application = getattr(importlib.import_module(file.stem), "application", None)
    if callable(application):
        serve_once(application)


if __name__ == "__main__":
    main(sys.argv[1])
