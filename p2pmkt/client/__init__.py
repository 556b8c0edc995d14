"""p2pmkt.client: the stable public API for talking to a p2pmkt node.

Async (trio)::

    async with open_client("/ip4/127.0.0.1/tcp/7001/p2p/16Uiu2…") as c:
        print(await c.info())
        txid = await c.submit_tx(make_tx(key, chain, nonce, kind, payload))
        status = await c.wait_tx_committed(txid, timeout=10)
        # a terminal's visits: packed, signed, nonces counted, back-pressure waited out
        txids = await c.submit_visits(terminal_key, visits, per_tx=2000)

Blocking (scripts, console)::

    with connect("/ip4/…/p2p/…") as c:
        print(c.head())
"""

from p2pmkt.chain.tx import SignedTransaction, Transaction, make_tx
from p2pmkt.client.client import Client, open_client
from p2pmkt.client.sync import SyncClient, connect
from p2pmkt.net.errors import DialFailed, NetworkError, ProtocolRefused, StreamClosed
from p2pmkt.rpc.protocol import ErrorCode, Event, RpcError
from p2pmkt.rpc.server import Head, NodeInfo, TxStatus

__all__ = [
    "Client",
    "DialFailed",
    "ErrorCode",
    "Event",
    "Head",
    "NetworkError",
    "NodeInfo",
    "ProtocolRefused",
    "RpcError",
    "SignedTransaction",
    "StreamClosed",
    "SyncClient",
    "Transaction",
    "TxStatus",
    "connect",
    "make_tx",
    "open_client",
]
