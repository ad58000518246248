"""postfork for ASGI apps (FastAPI, Starlette, any ASGI app) under uvicorn, gunicorn's uvicorn
and ASGI workers, and hypercorn: pools warm in each worker's lifespan before its first request.

- :class:`LifespanMiddleware` wraps any ASGI app; :func:`lifespan` is the same for the
  ``lifespan=`` argument of Starlette and FastAPI.
"""

from .lifespan import WARMUP_SCOPE_KEY, LifespanMiddleware, PostforkStartup, lifespan

__all__ = ["WARMUP_SCOPE_KEY", "LifespanMiddleware", "PostforkStartup", "lifespan"]
