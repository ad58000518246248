"""The silence breaker: after a connect or a query timed out, checkouts that would connect fail
fast instead of each waiting out the same timeout.

A silent server (a failover that moved an address, a lost NAT entry) costs one timeout per
worker, not one per request: until a connect succeeds, a checkout that finds no idle
connection waits at most ``PROBE_WAIT`` for the background connect the upkeep is making, and
fails fast with :class:`~postfork.DatabaseUnavailable` when none is in flight. State only: the
pool asks it under its lock and does the waiting itself.
"""

from __future__ import annotations

import time

from ..errors import DatabaseUnavailable

# A checkout waits this long for the background connect before failing fast; without one in
# flight, a connect is tried again only this long after the last timeout.
PROBE_WAIT = 0.25
SILENCE_BACKOFF = 0.5


class SilenceBreaker:
    """Whether the database looks silent, and what a checkout may do about it."""

    __slots__ = ("degraded", "refill_left_at", "silent_at")

    def __init__(self) -> None:
        # a connect failed or a connection died in use, and none has connected since: the
        # after-response upkeep must not wait on a connect
        self.degraded = False
        self.silent_at = 0.0  # when the server last looked silent (0.0: never, or answered)
        self.refill_left_at = 0.0  # the refill was left to the upkeep's own thread or task

    def note_silence(self) -> None:
        """A connect or a query timed out, or a deadline cut one off."""
        self.silent_at = time.monotonic()
        self.degraded = True

    def note_trouble(self) -> None:
        """A connect failed or a connection died in use (not necessarily silence)."""
        self.degraded = True

    def note_connected(self) -> None:
        self.degraded = False
        self.silent_at = 0.0

    def note_refill_left(self) -> None:
        """The response's upkeep left a refill to the background (it must not wait on a
        silent database): a checkout arriving before that runs waits for it too."""
        self.refill_left_at = time.monotonic()

    def connect_would_wait(self, warming: bool) -> bool:
        """With ``silent_at`` set: a connect now would likely wait for the silent server too.
        ``warming``: a background connect is in flight."""
        return self.probing(warming) or time.monotonic() - self.silent_at < SILENCE_BACKOFF

    def probing(self, warming: bool) -> bool:
        """A background connect is in flight, or is about to be (left a moment ago)."""
        return warming or time.monotonic() - self.refill_left_at < PROBE_WAIT

    def wait_for_probe(
        self, target: str, deadline: float, waiting_since: float, warming: bool
    ) -> float:
        """Seconds a checkout may still wait for the background connect; raises
        DatabaseUnavailable when there is none, or it took PROBE_WAIT already."""
        now = time.monotonic()
        give_up = min(deadline, waiting_since + PROBE_WAIT) if self.probing(warming) else now
        if now >= give_up:
            raise DatabaseUnavailable(
                f"MySQL at {target} is not answering (a connect or query timed out "
                f"{now - self.silent_at:.1f}s ago): not waiting for it on this request; "
                "reconnecting in the background"
            )
        return give_up - now
