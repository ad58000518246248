"""Let the kernel find a vanished database host among idle connections, without a round trip.

A host that dies without a RST, or a lost NAT or firewall entry, leaves an idle connection that
looks alive: nothing arrives, so the zero-timeout poll sees nothing. TCP keepalive probes the
peer while the connection is idle; when it stops answering, the kernel marks the socket in error
and the next checkout's poll discards it. ``TCP_USER_TIMEOUT`` (Linux) also ends a connection
whose sent data stays unacknowledged that long. Unix sockets have no peer to lose: untouched.
"""

from __future__ import annotations

import socket

from ..drivers.base import borrowed_socket

KEEPALIVE_PROBES = 3


def detect_dead_peers(fd: int, seconds: float) -> bool:
    """Declare the peer dead after about ``seconds`` of silence (idle: half of it, then
    ``KEEPALIVE_PROBES`` probes); False when the socket is not TCP (or the OS refuses)."""
    with borrowed_socket(fd) as sock:
        if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return False
        idle = max(1, int(seconds / 2))
        interval = max(1, int((seconds - idle) / KEEPALIVE_PROBES))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if hasattr(socket, "TCP_KEEPIDLE"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)
            if hasattr(socket, "TCP_USER_TIMEOUT"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(seconds * 1000))
        except OSError:
            return False
        return True
