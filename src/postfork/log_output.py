"""postfork's log lines in the server's log, when the app has not configured logging.

An app that configures nothing gets none of a library's records: Python drops INFO by level,
and a library's ``NullHandler`` also silences the last-resort output of WARNINGs. gunicorn and
uWSGI print their own lines to stderr; postfork's belong beside them: its WARNINGs (a
``min-worker-lifetime`` that defeats ``max-requests``, a database unreachable at warm-up) and
its one ``warm in`` line per worker, at INFO. So, until the app configures logging, a handler
on the ``postfork`` logger writes to stderr: WARNING and above, and the records logged with
:func:`announce`. Once the app has a handler of its own (on the root logger, or on
``postfork``), this one steps aside and postfork's records go where the app sends every
library's.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

ANNOUNCED = "postfork_announced"  # set on a record logged by announce()
FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


class ServerLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr (whatever ``sys.stderr`` is when a record comes), gunicorn's line shape."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(FORMAT))

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always the current stderr

    def filter(self, record: logging.LogRecord) -> bool:
        if self.app_configured_logging():
            return False
        return record.levelno >= logging.WARNING or bool(getattr(record, ANNOUNCED, False))

    def app_configured_logging(self) -> bool:
        return bool(logging.getLogger().handlers) or any(
            handler is not self for handler in logging.getLogger("postfork").handlers
        )


handler = ServerLogHandler()


def install() -> None:
    """Put the handler on the ``postfork`` logger (once; ``import postfork`` does)."""
    logger = logging.getLogger("postfork")
    if handler not in logger.handlers:
        logger.addHandler(handler)


def announce(logger: logging.Logger, message: str, *args: object) -> None:
    """``logger.info(message, *args)``, which also reaches the server's log when the app has
    not configured logging (for lines a user should see once per worker, not per request)."""
    extra = {ANNOUNCED: True}
    if logger.isEnabledFor(logging.INFO):
        logger.info(message, *args, extra=extra)
    elif not handler.app_configured_logging() and not logger.disabled:
        record = logger.makeRecord(
            logger.name, logging.INFO, "(postfork)", 0, message, args, None, extra=extra
        )
        logger.handle(record)
