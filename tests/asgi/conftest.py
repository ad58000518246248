"""The ASGI tier: real ASGI servers (uvicorn, gunicorn's uvicorn worker and its own ASGI
worker, hypercorn) serving an app of its own on a private MariaDB, over loopback HTTP."""

from __future__ import annotations

import dataclasses
import http.client
from collections.abc import Iterator

import pytest

from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import Response, ServiceProcess, free_port, get

NOTES_APP = "tests.asgi.apps.notes:application"
NOTES = (1, "one"), (2, "two")


@pytest.fixture(scope="module")
def notes_db() -> Iterator[EmbeddedMariaDB]:
    """A private MariaDB for one module (its connection counts are ours alone), with the
    notes app's table."""
    with EmbeddedMariaDB() as server:
        server.execute(
            "CREATE TABLE postfork.postfork_asgi_notes (id INT PRIMARY KEY AUTO_INCREMENT, "
            "body VARCHAR(40))"
        )
        values = ", ".join(f"({key}, '{body}')" for key, body in NOTES)
        server.execute(f"INSERT INTO postfork.postfork_asgi_notes VALUES {values}")
        yield server


def serve(
    db: EmbeddedMariaDB,
    server: str,
    driver: str | None = "asyncmy",
    *,
    processes: int = 2,
    max_requests: int = 10,
    env: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
    app: str = NOTES_APP,
    ready_path: str = "/healthz",
) -> ServiceProcess:
    """The notes app (or ``app``) under ``server``, recycling every ``max_requests``."""
    options = ServeOptions(
        server=server,
        processes=processes,
        max_requests=max_requests,
        bind=f"127.0.0.1:{free_port()}",
        extra=extra,
        app=app,
    )
    url = db.url if driver is None else dataclasses.replace(db.url, driver=driver)
    return ServiceProcess(url, options, env=env or {}, ready_path=ready_path)


def aborted_clients(db: EmbeddedMariaDB) -> int:
    return int(db.execute("SHOW GLOBAL STATUS LIKE 'Aborted_clients'")[0][1])


def get_as_a_proxy_would(
    port: int, path: str, resets: list[str] | None = None, method: str = "GET"
) -> Response:
    """The request, sent again once if the server reset the connection before answering
    (uvicorn and hypercorn do to a connection accepted just before a recycled worker shuts
    down; a proxy in front retries such a request: the server closes only connections whose
    request it has not parsed, so even a POST was not run). ``resets`` collects the paths it
    resent."""
    try:
        return get(port, path, method=method)
    except (ConnectionResetError, http.client.RemoteDisconnected):
        if resets is not None:
            resets.append(path)
        return get(port, path, method=method)


def reads(service: ServiceProcess, count: int, resets: list[str] | None = None) -> list[Response]:
    return [
        get_as_a_proxy_would(service.port, f"/notes/{index % len(NOTES) + 1}", resets)
        for index in range(count)
    ]


def server_code_warmed(server: str, pid: int) -> str:
    """The line worker ``pid`` logs once postfork has run ``server``'s own request handling on
    its 3 requests (uvicorn's protocol under uvicorn and gunicorn's UvicornWorker; gunicorn's
    ASGI worker)."""
    name = "gunicorn" if server == "gunicorn-asgi" else "uvicorn"
    return f"pid {pid}: {name}'s request handling warmed on 3 request(s)"
