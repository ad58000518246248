"""Run code as the module being imported finishes, in the thread importing it.

``install()`` is often written at the top of an app's module, above the routes and middleware
the rest of the module adds. Called there in the process that serves (a worker loading the
app, or no server at all), its warm-up, a request through the app, would run against an app
half built; Starlette then refuses the module's own ``add_middleware`` ("Cannot add middleware
after an application has started") and every worker fails to boot. Waiting on another thread
lets the server accept before the warm-up ends, so a first request finds the pool's connection
taken and connects. Instead the warm-up runs as the module's body returns, in the importing
thread, before the server goes on: a profile function on that thread, for the rest of the
module's body only, watches for that frame's return. The same moment serves what must wait for
the complete app in a master too: SQLAlchemy's mappers configured once, before fork, once every
model is defined.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("postfork.install")


def module_being_imported() -> FrameType | None:
    """The outermost frame on this thread executing a module body whose import is still
    running (the app's module the server imports, which may import the one calling us)."""
    found = None
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        spec = frame.f_globals.get("__spec__")
        if frame.f_code.co_name == "<module>" and getattr(spec, "_initializing", False):
            found = frame
        frame = frame.f_back
    return found


def when_done(module: FrameType, callback: Callable[[], object]) -> bool:
    """Call ``callback`` in this thread as ``module``'s body returns, after the callbacks
    arranged before it for that module (an app may install two pools). False, and nothing
    arranged, when this thread already has another profiler (cProfile, a debugger's): the
    caller then runs it at once."""
    current = sys.getprofile()
    if isinstance(current, _AtModuleEnd) and current.watches(module):
        current.callbacks.append(callback)
        return True
    if current is not None:
        return False
    sys.setprofile(_AtModuleEnd(module, callback))
    return True


class _AtModuleEnd:
    """The profile function that waits for one module body's return."""

    def __init__(self, module: FrameType, callback: Callable[[], object]) -> None:
        self.code, self.namespace = module.f_code, module.f_globals
        self.callbacks = [callback]

    def watches(self, module: FrameType) -> bool:
        return module.f_code is self.code and module.f_globals is self.namespace

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "return" or not self.watches(frame):
            return
        sys.setprofile(None)
        for callback in self.callbacks:
            try:
                callback()
            except Exception:  # never the import's failure: it is the warm-up's
                log.exception("postfork's set-up after the app's import failed")
