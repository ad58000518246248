"""WSGI middleware that makes the tail visible, for any WSGI app: per-request timing
(``Server-Timing``, ``X-Worker``, an access log), sampled profiling and Prometheus metrics
aggregated over a server's workers."""

from .body import ClosingBody
from .metrics import MetricsEndpoint, ServiceMetrics, ensure_multiprocess_dir
from .profiling import ProfileSettings, ProfilingMiddleware
from .timing import RequestTiming, TimingMiddleware, WSGIApp

__all__ = [
    "ClosingBody",
    "MetricsEndpoint",
    "ProfileSettings",
    "ProfilingMiddleware",
    "RequestTiming",
    "ServiceMetrics",
    "TimingMiddleware",
    "WSGIApp",
    "ensure_multiprocess_dir",
]
