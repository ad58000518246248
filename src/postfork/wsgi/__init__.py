"""WSGI middleware that makes the tail visible, for any WSGI app: per-request timing
(``Server-Timing``, ``X-Worker``, an access log), sampled profiling and Prometheus metrics
aggregated over a server's workers. The mechanism is ``postfork.observe``'s, shared with the
ASGI middleware of the same names (``postfork.asgi``)."""

from ..observe.metrics import ServiceMetrics, ensure_multiprocess_dir
from ..observe.timing import Request, RequestTiming
from ..warmup import warmup_request
from .body import ClosingBody
from .metrics import MetricsEndpoint
from .profiling import ProfileSettings, ProfilingMiddleware
from .timing import TimingMiddleware, WSGIApp

__all__ = [
    "ClosingBody",
    "MetricsEndpoint",
    "ProfileSettings",
    "ProfilingMiddleware",
    "Request",
    "RequestTiming",
    "ServiceMetrics",
    "TimingMiddleware",
    "WSGIApp",
    "ensure_multiprocess_dir",
    "warmup_request",
]
