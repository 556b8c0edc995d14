"""A write cancelled half-way leaves the connection usable (real py-libp2p hosts, Noise, Yamux).

py-libp2p 0.8.1 encrypts each Noise message (advancing the nonce) and then sends it; a
cancellation between or inside those sends left the peer a truncated message or a skipped
nonce, so the peer's next decryption failed ("Failed authentication of message") and it
dropped the whole connection: every other stream on it ended. A node cancels writes all the
time (a subscription's pump when the client unsubscribes, timeouts around requests); in CI a
client's RPC stream died that way. See ``p2pmkt.net.host._make_yamux_writes_cancel_safe``.
"""

from __future__ import annotations

import trio

from p2pmkt.net import NetConfig, open_net
from p2pmkt.net.stream import FramedStream

CONFIG = NetConfig(gossip=None, discovery=False)
CLIENT = NetConfig(listen=(), gossip=None, discovery=False)
BLAST = "/p2pmkt-test/blast/1.0.0"
ECHO = "/p2pmkt-test/echo/1.0.0"
BIG = bytes(range(256)) * 4096  # 1 MiB: many Noise messages per write


async def _blast(fs: FramedStream) -> None:
    """Start writing big frames and give up on each almost at once, many times over."""
    await fs.read_frame()
    for _ in range(60):
        with trio.move_on_after(0.0005):
            await fs.write_frame(BIG)


async def _echo(fs: FramedStream) -> None:
    while (payload := await fs.read_frame()) is not None:
        await fs.write_frame(payload)


async def _drain(fs: FramedStream) -> None:
    try:
        while await fs.read_frame() is not None:
            pass
    except Exception:
        pass  # the blast stream's frames are cut short by design


async def test_writes_cancelled_mid_message_leave_other_streams_working() -> None:
    async with open_net(config=CONFIG) as server, open_net(config=CLIENT) as client:
        server.handle(BLAST, _blast, max_frame=2 * len(BIG))
        server.handle(ECHO, _echo)
        peer = await client.connect(server.addrs()[0])
        echo = await client.open_stream(peer, ECHO)
        await echo.write_frame(b"before")
        with trio.fail_after(10):
            assert await echo.read_frame() == b"before"
        blast = await client.open_stream(peer, BLAST, max_frame=2 * len(BIG))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drain, blast)
            await blast.write_frame(b"go")
            for i in range(20):
                await echo.write_frame(b"ping %d" % i)
                with trio.fail_after(10):
                    assert await echo.read_frame() == b"ping %d" % i
                await trio.sleep(0.01)  # let the blasts run between pings
            nursery.cancel_scope.cancel()
        assert peer in client.connected_peers()
