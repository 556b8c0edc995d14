"""p2pmkt.net: everything that touches py-libp2p (the only package that imports it).

Importing this package sets ``PY_YAMUX_RELEASE_ON_READ=0`` (unless already set) *before*
py-libp2p is imported: py-libp2p's Yamux otherwise sends a window update on nearly every read,
which halves gossip throughput (notes/py-libp2p.md §2).

Public surface: :func:`open_net` (host + gossip + discovery in one async context),
:class:`NetConfig`, :class:`Members`, the protocol services
(:func:`~p2pmkt.net.rpc_stream.run_rpc_server`, :func:`~p2pmkt.net.raft_transport.open_raft_transport`,
:func:`~p2pmkt.net.sync.run_sync_server`, :func:`~p2pmkt.net.sync.fetch_blocks`) and the
network errors.
"""

import os

os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")

from p2pmkt.net.errors import DialFailed, NetworkError, ProtocolRefused, StreamClosed
from p2pmkt.net.host import Net, NetConfig, open_net
from p2pmkt.net.members import Members, node_id_of, peer_id_of
from p2pmkt.net.pubsub import Gossip, GossipConfig, TxBundle
from p2pmkt.net.raft_transport import RaftTransport, open_raft_transport
from p2pmkt.net.rpc_stream import RpcLimits, RpcStreamClient, open_rpc_stream, run_rpc_server
from p2pmkt.net.stream import FramedStream
from p2pmkt.net.sync import BlockProvider, fetch_blocks, run_sync_server

__all__ = [
    "BlockProvider",
    "DialFailed",
    "FramedStream",
    "Gossip",
    "GossipConfig",
    "Members",
    "Net",
    "NetConfig",
    "NetworkError",
    "ProtocolRefused",
    "RaftTransport",
    "RpcLimits",
    "RpcStreamClient",
    "StreamClosed",
    "TxBundle",
    "fetch_blocks",
    "node_id_of",
    "open_net",
    "open_raft_transport",
    "open_rpc_stream",
    "peer_id_of",
    "run_rpc_server",
    "run_sync_server",
]
