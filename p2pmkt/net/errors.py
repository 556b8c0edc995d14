"""Network errors raised by :mod:`p2pmkt.net` (py-libp2p exceptions are mapped to these).

They extend the project tree (``p2pmkt.errors``) from here because only ``net`` raises them::

    P2pmktError
    └── NetworkError          a dial, stream or peer failed; retry or give up, never a bug
        ├── DialFailed        no address of the peer could be reached (or wrong peer id)
        ├── StreamClosed      the stream ended or was reset while reading or writing
        └── ProtocolRefused   the peer does not speak the protocol, or refused us
"""

from __future__ import annotations

from p2pmkt.errors import P2pmktError


class NetworkError(P2pmktError):
    reason = "network"


class DialFailed(NetworkError):
    reason = "dial_failed"


class StreamClosed(NetworkError):
    reason = "stream_closed"


class ProtocolRefused(NetworkError):
    reason = "protocol_refused"
