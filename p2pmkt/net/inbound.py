"""How many connections one IP address may hold open to a node, when they are not members'.

Why: a peer id costs nothing (any client makes a fresh key), so limits per peer id (the RPC
request rate, streams per peer) do not stop one machine from opening connection after
connection. Each holds one of the swarm's connection slots (py-libp2p: 300 in all, shared with
the node's own connections to the other members), so enough of them lock the members out too.
An IP address is what such a machine cannot multiply as cheaply. Chain members are never
counted: several nodes of a testnet share 127.0.0.1, and a member's connection is the one that
must always get in.

Pure bookkeeping; the swarm's inbound handler (``p2pmkt.net.host``) asks :meth:`admit` once the
Noise handshake names the peer, and calls :meth:`release` when an admitted connection closes.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["ClientConnections"]


class ClientConnections:
    """Open inbound connections of non-members, per remote IP address."""

    def __init__(self, per_ip: int) -> None:
        """``per_ip``: the most a single address may hold open at once; 0 means no limit."""
        self.per_ip = per_ip
        self._open: Counter[str] = Counter()

    def admit(self, ip: str | None, member: bool) -> bool:
        """Count a new connection from ``ip``; False (nothing counted) if it is one too many.

        Members, and connections whose address is unknown, are always admitted and never
        counted.
        """
        if member or ip is None or not self.per_ip:
            return True
        if self._open[ip] >= self.per_ip:
            return False
        self._open[ip] += 1
        return True

    def release(self, ip: str | None, member: bool) -> None:
        """An admitted connection from ``ip`` closed (same arguments as its :meth:`admit`)."""
        if member or ip is None or not self.per_ip:
            return
        self._open[ip] -= 1
        if self._open[ip] <= 0:
            del self._open[ip]

    def open_from(self, ip: str) -> int:
        return self._open[ip]
