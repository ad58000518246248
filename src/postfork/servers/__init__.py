"""Which pre-fork server runs this process, in which role, and the servers' own hooks.

Nothing here knows about pools: ``postfork.fork`` and ``postfork.install`` use these to learn
when a worker starts or exits and whether this process is a master that must hold no connection.
"""

from .detect import Role, detect, serves_concurrently, serving

__all__ = ["Role", "detect", "serves_concurrently", "serving"]
