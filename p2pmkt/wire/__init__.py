"""p2pmkt.wire: canonical CBOR and varint framing (pure, no I/O)."""

from p2pmkt.wire.cbor import decode, encode
from p2pmkt.wire.framing import FrameBuffer, encode_uvarint, frame

__all__ = ["FrameBuffer", "decode", "encode", "encode_uvarint", "frame"]
