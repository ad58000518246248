"""Real network partitions for tests: a network namespace joined to this one by a veth pair,
and nftables rules inside it that drop packets. A server started in the namespace (through
:attr:`Namespace.wrap`) is reached over TCP at :attr:`Namespace.inside`; :meth:`drop` makes it
vanish the way a failed host, a cut cable or a lost NAT entry does (nothing refused, nothing
closed, packets gone), in both directions or one, for new sessions, established ones or all.
Only the namespace's own rules change: this machine's firewall is never touched.

Needs root, ``ip`` (iproute2) and ``nft`` (nftables); :func:`unavailable` says what is missing,
so that tests skip with that reason where they cannot run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

TABLE = "postfork_partition"
DIRECTIONS = ("both", "in", "out")
SESSIONS = ("all", "new", "established")
CHAINS = (("tracking", "input"), ("incoming", "input"), ("outgoing", "output"))


def unavailable() -> str | None:
    """Why partitions cannot be made here, or None."""
    if os.geteuid() != 0:
        return "real network partitions need root (network namespaces, nftables)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"real network partitions need `{tool}` (Debian package {package})"
    return None


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


class Namespace:
    """``with Namespace(n) as ns:`` a namespace at ``ns.inside`` (10.251.n.2), this side at
    ``ns.outside`` (10.251.n.1); ``ns.drop(...)`` / ``ns.heal()``; gone on exit."""

    def __init__(self, subnet: int) -> None:
        if not 0 <= subnet <= 255:
            raise ValueError(f"subnet is one byte (0-255), got {subnet}")
        tag = uuid.uuid4().hex[:6]
        self.name = f"pf-{tag}"
        self.outside_link, self.inside_link = f"pfo{tag}", f"pfi{tag}"  # 15 characters at most
        self.outside, self.inside = f"10.251.{subnet}.1", f"10.251.{subnet}.2"
        self.wrap = ("ip", "netns", "exec", self.name)  # argv prefix: run a command inside

    def __enter__(self) -> Namespace:
        _run("ip", "netns", "add", self.name)
        try:
            _run("ip", "link", "add", self.outside_link, "type", "veth", "peer", "name",
                 self.inside_link)  # fmt: skip
            _run("ip", "link", "set", self.inside_link, "netns", self.name)
            _run("ip", "addr", "add", f"{self.outside}/30", "dev", self.outside_link)
            _run("ip", "link", "set", self.outside_link, "up")
            self._inside("ip", "addr", "add", f"{self.inside}/30", "dev", self.inside_link)
            self._inside("ip", "link", "set", self.inside_link, "up")
            self._inside("ip", "link", "set", "lo", "up")
            self._inside("nft", "add", "table", "inet", TABLE)
            for chain, hook in CHAINS:
                self._inside(
                    "nft", "add", "chain", "inet", TABLE, chain,
                    f"{{ type filter hook {hook} priority 0 ; policy accept ; }}",
                )  # fmt: skip
            # a rule on connection state from the start: the namespace's conntrack then follows
            # every session from its first packet, and a later "new sessions only" drop knows
            # a live one (picked up mid-stream, its next packet would count as new)
            self._inside("nft", "add", "rule", "inet", TABLE, "tracking", "ct", "state",
                         "established", "counter")  # fmt: skip
        except BaseException:
            self.close()
            raise
        return self

    def _inside(self, *argv: str) -> None:
        _run(*self.wrap, *argv)

    def drop(
        self, *, direction: str = "both", sessions: str = "all", port: int | None = None
    ) -> None:
        """Drop the packets the namespace receives (``in``), sends (``out``) or both, on its
        veth: of every session, only of new ones (a SYN to a server inside goes unanswered,
        live sessions go on) or only of established ones; ``port``: only those of the server
        listening on that port inside (others, replication say, go on)."""
        if direction not in DIRECTIONS or sessions not in SESSIONS:
            raise ValueError(f"direction in {DIRECTIONS}, sessions in {SESSIONS}")
        state = [] if sessions == "all" else ["ct", "state", sessions]
        incoming, outgoing = ("incoming", "iifname", "dport"), ("outgoing", "oifname", "sport")
        chosen = {"both": [incoming, outgoing], "in": [incoming], "out": [outgoing]}[direction]
        rules = [
            ["add", "rule", "inet", TABLE, chain, link_match, self.inside_link,
             *([] if port is None else ["tcp", port_match, str(port)]), *state, "drop"]
            for chain, link_match, port_match in chosen
        ]  # fmt: skip
        self._nft(rules)

    def heal(self) -> None:
        """Every drop rule gone: packets flow again (sessions that survived resume)."""
        self._nft([["flush", "chain", "inet", TABLE, chain] for chain in ("incoming", "outgoing")])

    def _nft(self, commands: list[list[str]]) -> None:
        """One nft run, one transaction: both directions change at the same instant."""
        self._inside("nft", " ; ".join(" ".join(command) for command in commands))

    def close(self) -> None:
        """Delete the veth pair (both ends, at once) and the namespace; processes still
        running inside lose their network, so stop them first."""
        subprocess.run(("ip", "link", "del", self.outside_link), capture_output=True, check=False)
        subprocess.run(("ip", "netns", "del", self.name), capture_output=True, check=False)

    def __exit__(self, *exc_info: object) -> None:
        self.close()
