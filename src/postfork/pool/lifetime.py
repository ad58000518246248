"""How long a pooled connection lives: below the server's idle limit and the pool's cap, minus
per-connection random jitter (HikariCP's ``maxLifetime`` variance), so connections neither die
in use nor all expire together."""

from __future__ import annotations

SERVER_TIMEOUT_SHARE = 0.8  # retire at 80% of the session's wait_timeout at the latest
REFRESH_AHEAD = 0.1  # maintain() replaces idle connections in their last 10% of life


def ceiling(max_lifetime: float, wait_timeout: float) -> float:
    """The longest any connection lives on a server with this ``wait_timeout``."""
    return min(max_lifetime, wait_timeout * SERVER_TIMEOUT_SHARE)


def lifetime(max_lifetime: float, wait_timeout: float, jitter: float, draw: float) -> float:
    """One connection's lifetime; ``draw`` is a random number in [0, 1)."""
    return ceiling(max_lifetime, wait_timeout) * (1.0 - jitter * draw)


def refresh_margin(created: float, expires: float) -> float:
    """How long before its expiry maintain() replaces an idle connection."""
    return (expires - created) * REFRESH_AHEAD
