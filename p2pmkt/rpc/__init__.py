"""p2pmkt.rpc: the client wire protocol, pure (shared by the node and the client library).

* :mod:`~p2pmkt.rpc.protocol` message forms, error codes, id matching, rate limiting;
* :mod:`~p2pmkt.rpc.methods` method names and schemas (source of docs/PROTOCOL.md);
* :mod:`~p2pmkt.rpc.server` the :class:`NodeApi` contract and the per-stream dispatcher.
"""

from p2pmkt.rpc.methods import EVENT_KINDS, METHODS, MethodSpec, ParamsError, check_params
from p2pmkt.rpc.protocol import (
    ClientSession,
    ErrorAnswer,
    ErrorCode,
    Event,
    Request,
    Result,
    RpcError,
    TokenBucket,
    parse_request,
    parse_server_message,
)
from p2pmkt.rpc.server import (
    BlockRecord,
    Head,
    NodeApi,
    NodeEvent,
    NodeInfo,
    RpcServerSession,
    TxStatus,
)

__all__ = [
    "EVENT_KINDS",
    "METHODS",
    "BlockRecord",
    "ClientSession",
    "ErrorAnswer",
    "ErrorCode",
    "Event",
    "Head",
    "MethodSpec",
    "NodeApi",
    "NodeEvent",
    "NodeInfo",
    "ParamsError",
    "Request",
    "Result",
    "RpcError",
    "RpcServerSession",
    "TokenBucket",
    "TxStatus",
    "check_params",
    "parse_request",
    "parse_server_message",
]
