"""Chain members as network peers: address (NodeId) ↔ libp2p peer id.

A member's account key *is* its libp2p identity (secp256k1), so the peer id is computed from
the member's public key and needs no registry. :class:`Members` is the allowlist consulted by
consensus protocols (Raft, blocks and transactions gossip, peer exchange): a peer id outside
it takes no part in consensus, though it may still use the client protocol. Membership
changes by transaction: the node calls :meth:`Members.update` after applying one.
"""

from __future__ import annotations

from collections.abc import Iterable

from libp2p.crypto.secp256k1 import Secp256k1PublicKey
from libp2p.peer.id import ID

from p2pmkt.crypto.keys import address_hex, address_of, is_public_key
from p2pmkt.types import NodeId


def peer_id_of(pubkey: bytes) -> str:
    """Base58 libp2p peer id of a 33-byte compressed secp256k1 public key."""
    return str(ID.from_pubkey(Secp256k1PublicKey.from_bytes(pubkey)).to_base58())


def node_id_of(pubkey: bytes) -> NodeId:
    """The NodeId ("0x" + 40 hex address) of a public key."""
    return NodeId(address_hex(address_of(pubkey)))


class Members:
    """The current member set. Lookups are O(1); :meth:`update` replaces the whole set."""

    __slots__ = ("_by_node", "_by_peer")

    def __init__(self, pubkeys: Iterable[bytes] = ()) -> None:
        self._by_node: dict[NodeId, str] = {}
        self._by_peer: dict[str, NodeId] = {}
        self.update(pubkeys)

    def update(self, pubkeys: Iterable[bytes]) -> None:
        """Replace the set. A key that is no secp256k1 point has no peer id and is left out
        (``member.add`` refuses such keys; a chain written by an older version may hold one)."""
        by_node = {node_id_of(pk): peer_id_of(pk) for pk in pubkeys if is_public_key(pk)}
        self._by_node = by_node
        self._by_peer = {p: n for n, p in by_node.items()}

    def __len__(self) -> int:
        return len(self._by_node)

    def is_member(self, peer_id: str) -> bool:
        return peer_id in self._by_peer

    def node_of(self, peer_id: str) -> NodeId | None:
        return self._by_peer.get(peer_id)

    def peer_of(self, node: NodeId) -> str | None:
        return self._by_node.get(NodeId(node.lower()))

    def peer_ids(self) -> frozenset[str]:
        return frozenset(self._by_peer)

    def node_ids(self) -> frozenset[NodeId]:
        return frozenset(self._by_node)
