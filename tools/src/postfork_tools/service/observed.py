"""The middleware around the service, the same for its WSGI and ASGI faces: from the inside
out, sampled profiling (``POSTFORK_PROFILE``, not wrapped at all when unset), ``/metrics``, and
timing (``Server-Timing``, ``X-Worker``, the access log, and the metrics' observer: it sees
every request, as the server counts them).

``face`` is ``postfork.wsgi`` or ``postfork.asgi``: the two export the same names, each for its
protocol, so one function wraps either.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

from postfork_tools.service.settings import ServiceSettings


def configure_logging(settings: ServiceSettings) -> None:
    """Log at the settings' level when the server did not configure logging itself."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


def observed(app: Any, pool: Any, settings: ServiceSettings, face: ModuleType) -> Any:
    """``app`` wrapped in ``face``'s middleware as ``settings`` ask; ``pool`` (None: none the
    metrics can watch) feeds the pool gauges."""
    profile = face.ProfileSettings.parse(settings.profile)  # a typo fails the load, not a request
    if profile.enabled:
        app = face.ProfilingMiddleware(app, profile)
    metrics = None
    if settings.metrics and pool is not None:
        metrics = face.ServiceMetrics(pool)
        app = face.MetricsEndpoint(app, metrics)
    timing = face.TimingMiddleware(app, access_log_format=settings.access_log)
    if metrics is not None:  # every request is counted, /metrics too (as the server counts it)
        timing.observers.append(metrics.observe)
    return timing
