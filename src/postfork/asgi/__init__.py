"""postfork for ASGI apps (FastAPI, Starlette, any ASGI app) under uvicorn, gunicorn's uvicorn
and ASGI workers, and hypercorn.

- Pools warm in each worker's lifespan, before its first request: :class:`LifespanMiddleware`
  wraps any ASGI app; :func:`lifespan` is the same for Starlette's and FastAPI's
  ``lifespan=``.
- The tail made visible, with the WSGI middleware's names and options: :class:`TimingMiddleware`
  (``Server-Timing``, ``X-Worker``, the access line), :class:`ProfilingMiddleware` (sampled
  cProfile), :class:`MetricsEndpoint` and ``ServiceMetrics`` (Prometheus over all workers).
"""

from ..observe.metrics import ServiceMetrics
from ..observe.profiling import ProfileSettings
from ..observe.timing import Request, RequestTiming
from .lifespan import LifespanMiddleware, PostforkStartup, lifespan
from .metrics import MetricsEndpoint
from .profiling import ProfilingMiddleware
from .timing import TimingMiddleware
from .types import WARMUP_SCOPE_KEY

__all__ = [
    "WARMUP_SCOPE_KEY",
    "LifespanMiddleware",
    "MetricsEndpoint",
    "PostforkStartup",
    "ProfileSettings",
    "ProfilingMiddleware",
    "Request",
    "RequestTiming",
    "ServiceMetrics",
    "TimingMiddleware",
    "lifespan",
]
