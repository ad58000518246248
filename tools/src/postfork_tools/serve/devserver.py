"""``postfork serve --server dev``: the service on wsgiref, one process, no recycling.

For trying the service without uWSGI or gunicorn. install() sees no server and warms at once.
"""

from __future__ import annotations

import logging
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        logging.getLogger("postfork.devserver").info(format, *args)


def main() -> None:
    from postfork_tools.serve.command import split_bind
    from postfork_tools.service.wsgi import application

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    host, port = split_bind(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000")
    with make_server(host, port, application, handler_class=_QuietHandler) as server:
        logging.getLogger("postfork.devserver").info("serving on http://%s:%d", host, port)
        server.serve_forever()


if __name__ == "__main__":
    main()
