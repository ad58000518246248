"""The reference service under real uWSGI and gunicorn (2 processes, recycling every 5
requests) on a server in a network namespace, cut off by nftables under HTTP load: the same
bounds as the delay proxy's silent database (tests/e2e/test_silent_database.py), against the
kernel's own behaviour this time: every answer a 200 or a JSON 503 within 3 s, back within
1 s of the link healing, no HARAKIRI or WORKER TIMEOUT."""

from __future__ import annotations

from typing import Any

import pytest

from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.command import ServeOptions
from postfork_tools.serve.runner import ServiceProcess, free_port

from ..e2e.conftest import seed_server
from ..e2e.test_silent_database import silence_under_traffic
from ..netpartition import Namespace

pytestmark = [pytest.mark.timeout(180), pytest.mark.private_server]


class Cut:
    """The delay proxy's commands, played by the namespace's packet filter: ``hold`` drops
    every packet both ways, ``hold-handshakes`` new sessions only, ``flow`` heals."""

    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace

    def command(self, what: str) -> None:
        if what == "flow":
            self.namespace.heal()
        else:
            self.namespace.drop(sessions="new" if what == "hold-handshakes" else "all")


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
@pytest.mark.parametrize("silence", ["hold", "hold-handshakes"])
def test_a_partition_under_load_with_recycling_is_answered_within_the_bound(
    namespace: Namespace, far_server: EmbeddedMariaDB, far_url: Any, server: str, silence: str
) -> None:
    seed_server(far_server)
    options = ServeOptions(
        server=server, processes=2, max_requests=5, bind=f"127.0.0.1:{free_port()}"
    )
    with ServiceProcess(far_url, options) as service:
        try:
            silence_under_traffic(service, Cut(namespace), silence)  # type: ignore[arg-type]
        finally:
            namespace.heal()
