"""Runs one documentation example as a user would run the file, then, when it defines a WSGI
``application``, serves it one request (wsgiref's test environ) and fails unless it is a 200.

    python tests/docs/run_example.py example.py
"""

from __future__ import annotations

import runpy
import sys
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
    namespace = runpy.run_path(path, run_name="__main__")
    application = namespace.get("application")
    if callable(application):
        serve_once(application)


if __name__ == "__main__":
    main(sys.argv[1])
