"""Structured logging for nodes: one line per event, ``key=value`` fields, levels.

py-libp2p configures its own ``libp2p`` logger (WARNING, no handler, ``propagate=False``),
so its warnings would bypass ours and reach stderr unformatted. :func:`setup_logging` routes
it through our handler and raises its threshold, because its multi-line warnings about
expected events (a peer hanging up during identify, a dial to a node that is down) drown the
node's own log.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-5s %(name)s %(message)s"


def setup_logging(
    level: str = "info", *, stream: TextIO | None = None, libp2p_level: str = "error"
) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("libp2p", "multiaddr", "zeroconf", "aioquic", "async_service", "libp2p.pubsub"):
        lg = logging.getLogger(noisy)
        lg.handlers[:] = []
        lg.propagate = True
        lg.setLevel(libp2p_level.upper())
    host = logging.getLogger("libp2p.host.basic_host")
    if not any(isinstance(f, ClientPeerWithoutGossip) for f in host.filters):
        host.addFilter(ClientPeerWithoutGossip())
    tcp = logging.getLogger("libp2p.transport.tcp.tcp")
    if not any(isinstance(f, DialRetries) for f in tcp.filters):
        tcp.addFilter(DialRetries())


class ClientPeerWithoutGossip(logging.Filter):
    """Drops py-libp2p's 7-line ERROR about a peer that speaks no GossipSub.

    The node's GossipSub opens a stream to every peer that connects; an RPC client (the CLI,
    the console, a JavaScript client) speaks only ``/p2pmkt/rpc/1.0.0``, so every client
    connection logged that error some seconds later, burying the node's own lines. A
    refusal of any other protocol is still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Failed to open stream to peer")
                    and "protocols not supported" in message and "'/meshsub/" in message)


def kv(event: str, **fields: Any) -> str:
    """``event key=value …``: a log line greppable by event name and fields."""
    parts = [event]
    for key, value in fields.items():
        text = value.hex() if isinstance(value, bytes) else str(value)
        if " " in text or not text:
            text = repr(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


class DialRetries(logging.Filter):
    """Drops py-libp2p's ERROR for each failed TCP dial. The node redials a member that is
    down every half second: each other node logged about 240 of these a minute. The node's
    discovery says it once instead (``cannot reach PEER (...)``), and again when it is back."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to open TCP stream")
