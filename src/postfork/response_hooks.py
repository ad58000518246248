"""What postfork does once a response is sent, in one call that every server's hook makes:
uWSGI's ``after_req_hook`` (set by ``install()``), gunicorn's ``post_request``
(``postfork.gunicorn``), Django's ``request_finished`` (``postfork.django``). Under a WSGI server
postfork has no hook in, call :func:`after_response` at the end of each request yourself (in a
middleware's ``close()``, say).

- The request's read-your-writes windows close (``topology/window.py``): a sync worker's thread
  serves the next client next, whose reads owe nothing to this one's writes.
- The installed pools' upkeep runs (``upkeep.py``), off the request path.
"""

from __future__ import annotations

from .servers import uwsgi as uwsgi_server
from .topology.window import request_ended
from .upkeep import upkeep

_hooked_uwsgi = False  # a worker inherits its master's hook with the module's state


def after_response() -> None:
    """Close this request's read-your-writes windows, then maintain the installed pools.
    Never raises."""
    request_ended()
    upkeep.after_response()


def hook_server() -> None:
    """Inside uWSGI, run :func:`after_response` after each request (chained once; uWSGI
    reads its hook once the app has loaded, so ``install()`` calls this while it loads)."""
    global _hooked_uwsgi
    if not _hooked_uwsgi:
        _hooked_uwsgi = uwsgi_server.chain_after_request(after_response)
