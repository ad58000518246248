"""The ASGI examples, as a new user would run them: each file is quoted verbatim in the docs
(tests/docs/test_examples.py checks the quotes), and each serves the seeded accounts under the
servers the docs name, workers recycled every 10 requests, every answer 200. (That no request
pays a connect under each server is tests/asgi/test_servers.py's, on an app that reports it in
Server-Timing.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions, command
from postfork_tools.serve.runner import ServiceProcess, free_port
from tests.e2e.conftest import service_db  # noqa: F401  (seeded: accounts 1..50)

from .conftest import get_as_a_proxy_would

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "asgi"
REQUESTS = 40


def example_server(db: EmbeddedMariaDB, server: str, module: str) -> ServiceProcess:
    """``module``'s app under ``server``, started the way the docs show (recycling every
    10 requests instead of the example's 1000)."""
    bind = f"127.0.0.1:{free_port()}"
    app = f"examples.asgi.{module}:app"
    url = dataclasses.replace(db.url, driver="asyncmy")
    if server.startswith("gunicorn"):
        worker = ("--worker-class", "asgi") if server == "gunicorn-asgi" else ()
        argv = [
            str(Path(command(ServeOptions(server="gunicorn"))[0])),
            *("-c", str(EXAMPLES / "gunicorn.conf.py"), "--bind", bind, "--workers", "2"),
            *("--max-requests", "10", "--max-requests-jitter", "0", *worker, app),
        ]
        options = ServeOptions(server=server, bind=bind)
        return ServiceProcess(url, options, argv=argv, ready_path="/accounts/1")
    options = ServeOptions(server=server, processes=2, max_requests=10, bind=bind, app=app)
    return ServiceProcess(url, options, ready_path="/accounts/1")


@pytest.mark.parametrize(
    ("server", "module"),
    [
        ("uvicorn", "fastapi_app"),
        ("gunicorn-uvicorn", "fastapi_app"),
        ("gunicorn-asgi", "fastapi_app"),
        ("hypercorn", "fastapi_app"),
        ("uvicorn", "starlette_app"),
    ],
)
def test_each_example_serves_under_the_servers_the_readme_names(
    service_db: EmbeddedMariaDB,  # noqa: F811
    server: str,
    module: str,
) -> None:
    with example_server(service_db, server, module) as service:
        answers = [
            get_as_a_proxy_would(service.port, f"/accounts/{n % 50 + 1}") for n in range(REQUESTS)
        ]
        log = service.log()
    assert {answer.status for answer in answers} == {200}, log[-3000:]
    assert answers[6].body == {"id": 7, "name": answers[6].body["name"]}
    assert answers[6].body["name"], answers[6].body
