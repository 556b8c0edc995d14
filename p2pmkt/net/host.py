"""The py-libp2p host of a p2pmkt node or client, configured safely.

Theory of operation
-------------------
:func:`open_net` is the one way to get a network: it builds a py-libp2p host with the settings
measured in notes/py-libp2p.md and yields a :class:`Net` facade that the rest of p2pmkt uses
instead of py-libp2p types:

* identity = the node's secp256k1 account key (``Secp256k1PrivateKey.from_bytes(secret)``),
  so a member's peer id follows from its public key (:mod:`p2pmkt.net.members`);
* **Noise only** (the default host also offers plaintext, which lets anyone claim any peer
  id), Yamux only, ``max_connections_per_peer=1`` (otherwise every dial waits 250 ms);
* GossipSub services are started **before** ``host.run()`` (a pubsub peer connecting first
  crashes py-libp2p 0.8.1), then the listeners, then our discovery tasks
  (:mod:`p2pmkt.net.discovery`): bootstrap dials, our own reconnect loop with
  ``unblock_peer`` (py-libp2p refuses redials for 60 s after a failure), peer exchange and
  optional mDNS;
* every stream handler registered with :meth:`Net.handle` is wrapped: it gets a
  :class:`~p2pmkt.net.stream.FramedStream`, members-only protocols reset streams from peers
  outside :class:`~p2pmkt.net.members.Members`, and *any* exception resets that stream and is
  logged — an exception escaping a py-libp2p handler would tear down the whole host.

Leaving the context cancels our tasks, then stops the host and pubsub (about 1 ms).

py-libp2p's own logger is WARNING, ``propagate=False`` and handler-less, so its (mostly
expected) errors go to stderr through ``logging.lastResort``; :func:`tame_libp2p_logging`
silences it (``LIBP2P_DEBUG`` still works for debugging).

py-libp2p 0.8.1 behaviours replaced on each host (each function says why, with what was
measured): :func:`_free_inbound_slot_on_close` (the swarm refused every inbound connection
after its 300th), :func:`_switch_off_auto_connector` (a second dialer beside our discovery),
:func:`_close_swarm` (0.2 s of sleeps per connection closed) and, on the Yamux class,
:func:`_make_yamux_writes_cancel_safe` (a write cancelled half-way broke the whole
connection); :func:`_root_cause` digs the reason for a failed dial out of its wrappers.
While a host closes, its addresses are answered from memory (GossipSub, stopped after the
swarm, read them from closed listeners).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.secp256k1 import Secp256k1PrivateKey
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.io.exceptions import ConnectionClosedError
from libp2p.network.config import ConnectionConfig
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service

from p2pmkt.chain.tx import DecodedTxCache
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.net.errors import DialFailed, ProtocolRefused, StreamClosed
from p2pmkt.net.inbound import ClientConnections
from p2pmkt.net.members import Members
from p2pmkt.net.pubsub import Gossip, GossipConfig, make_pubsub
from p2pmkt.net.stream import FramedStream
from p2pmkt.wire.framing import DEFAULT_MAX_FRAME

log = logging.getLogger(__name__)

STREAM_OPEN_TIMEOUT = 5.0
StreamHandler = Callable[[FramedStream], Awaitable[None]]


def tame_libp2p_logging() -> None:
    """Silence py-libp2p's own logging unless ``LIBP2P_DEBUG`` is set.

    py-libp2p logs at ERROR for expected events (a peer that runs no pubsub, a dial to a node
    that is down, a stream reset by the other side). Every failure that matters reaches us as
    an exception, which :mod:`p2pmkt.net` maps and logs under ``p2pmkt.net.*``.
    """
    lib = logging.getLogger("libp2p")
    if os.environ.get("LIBP2P_DEBUG"):
        return
    # Some py-libp2p modules set their own level (auto_connector: INFO), so a level on the
    # parent is not enough: end every record at a NullHandler here.
    lib.setLevel(logging.CRITICAL)
    lib.propagate = False
    if not any(isinstance(h, logging.NullHandler) for h in lib.handlers):
        lib.addHandler(logging.NullHandler())


tame_libp2p_logging()


@dataclass(frozen=True, slots=True)
class NetConfig:
    """Network settings of one node or client.

    ``chain_id`` names the gossip topics. ``gossip=None`` runs no pubsub (clients). An empty
    ``listen`` means dial-only (clients). ``announce``, when not empty, is what peer exchange
    hands out as this node's addresses instead of ``listen`` (a public address in front of NAT;
    see :mod:`p2pmkt.net.discovery`). ``bootstrap`` entries are full multiaddrs with
    ``/p2p/<peer id>``.
    """

    chain_id: str = "p2pmkt-dev"
    listen: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
    announce: tuple[str, ...] = ()
    clients_per_ip: int = 64
    """Inbound connections one IP address may hold open when they are not members' (0: no
    limit); see :mod:`p2pmkt.net.inbound`."""
    bootstrap: tuple[str, ...] = ()
    mdns: bool = False
    gossip: GossipConfig | None = field(default_factory=GossipConfig)
    discovery: bool = True
    reconnect_interval: float = 1.0
    dial_timeout: float = 3.0
    pex_interval: float = 2.0


REFUSAL_LOG_EVERY = 60.0
"""Seconds between two log lines about the same non-member refused on the same protocol."""


class Net:
    """A running host: identity, connections, framed streams, gossip and discovery.

    Created only by :func:`open_net`. ``members`` is None on an open network (dev, clients):
    then members-only protocols accept every peer.
    """

    def __init__(
        self, host: Any, key: PrivateKey, config: NetConfig, members: Members | None,
        gossip: Gossip | None,
    ) -> None:
        self._host = host
        self.key = key
        self.config = config
        self.members = members
        self.gossip = gossip
        self.peer_id: str = host.get_id().to_base58()
        from p2pmkt.net.discovery import Discovery  # cycle: discovery uses Net

        self.discovery = Discovery(self)
        self._refusals_logged: dict[tuple[str, str], float] = {}

    # ---------------------------------------------------------------- addresses, peers

    def addrs(self) -> list[str]:
        """Our listen multiaddrs, each ending in ``/p2p/<peer id>``."""
        return [str(a) for a in self._host.get_addrs()]

    def connected_peers(self) -> list[str]:
        return [p.to_base58() for p in self._host.get_connected_peers()]

    def is_connected(self, peer_id: str) -> bool:
        try:
            pid = ID.from_base58(peer_id)
        except Exception:
            return False
        return bool(self._host.get_network().get_connections(pid))

    def allowed(self, peer_id: str) -> bool:
        """True if ``peer_id`` may take part in consensus protocols."""
        return self.members is None or self.members.is_member(peer_id)

    async def connect(self, addr: str) -> str:
        """Dial a full multiaddr (with ``/p2p/<id>``); return the peer id.

        Clears py-libp2p's 60 s negative dial cache for that peer first. Gives up after
        ``NetConfig.dial_timeout`` seconds.

        A DNS address (``/dns4/host/…``, ``/dns6/…``, ``/dns/…``) is resolved here first:
        py-libp2p 0.8.1 cannot dial one ("IP address not found in multiaddr").

        Raises:
            DialFailed: bad address, a name that does not resolve, unreachable, wrong peer
                id, or too slow.
        """
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(await resolve_dns(addr)))
        except DialFailed:
            raise
        except Exception as exc:
            raise DialFailed(f"not a dialable multiaddr with /p2p/<peer id>: {addr!r}") from exc
        await self._connect_info(info)
        return str(info.peer_id.to_base58())

    async def _connect_info(self, info: Any) -> None:
        limit = self.config.dial_timeout
        self._host.get_network().unblock_peer(info.peer_id)
        if info.addrs and not self.is_connected(info.peer_id.to_base58()):
            # py-libp2p 0.8.1 dials only the first TCP address its peerstore holds for a
            # peer ("smart address selection"), whatever address we pass: leave it only the
            # one asked for, so a peer listed at several addresses is dialled at each in turn.
            self._host.get_peerstore().clear_addrs(info.peer_id)
        try:
            with trio.fail_after(limit):
                await self._host.connect(info)
        except trio.TooSlowError as exc:
            raise DialFailed(f"dialing {info.peer_id} took longer than {limit} s") from exc
        except Exception as exc:
            raise DialFailed(f"cannot connect to {info.peer_id} at {', '.join(map(str, info.addrs))}: "
                             f"{_root_cause(exc)}") from exc

    def add_peer_addrs(self, peer_id: str, addrs: list[str]) -> None:
        """Tell the peerstore where ``peer_id`` listens (used by dials without addresses)."""
        try:
            pid = ID.from_base58(peer_id)
            maddrs = [multiaddr.Multiaddr(a) for a in addrs]
        except Exception:
            return
        self._host.get_peerstore().add_addrs(pid, maddrs, 3600)

    async def disconnect(self, peer_id: str) -> None:
        try:
            await self._host.disconnect(ID.from_base58(peer_id))
        except Exception:
            pass

    # ---------------------------------------------------------------- streams

    def _log_refusal(self, protocol: str, peer_id: str) -> None:
        """Say once a minute per peer and protocol that a non-member was refused (a peer that
        keeps trying logged ten lines a second), and what to check."""
        now = time.monotonic()
        key = (protocol, peer_id)
        if now - self._refusals_logged.get(key, -REFUSAL_LOG_EVERY) < REFUSAL_LOG_EVERY:
            return
        self._refusals_logged[key] = now
        log.warning(
            "refused %s stream from %s: not a member of chain %s as this node's state has it "
            "(if it should be: compare `p2pmkt genesis show` on both machines, or this node may "
            "still be catching up to the block that added it); said once a minute",
            protocol, peer_id, self.config.chain_id)

    def handle(
        self,
        protocol: str,
        handler: StreamHandler,
        *,
        members_only: bool = False,
        max_frame: int = DEFAULT_MAX_FRAME,
        frame_timeout: float = 30.0,
    ) -> None:
        """Serve ``protocol``: ``handler`` gets each inbound stream as a FramedStream.

        The stream is closed when ``handler`` returns and reset if it raises; the exception is
        logged and never reaches the host. With ``members_only``, streams from peers outside
        :attr:`members` are reset before ``handler`` sees them.
        """

        async def wrapped(stream: Any) -> None:
            fs: FramedStream | None = None
            try:
                fs = FramedStream(stream, max_frame=max_frame, frame_timeout=frame_timeout)
                if members_only and not self.allowed(fs.peer_id):
                    self._log_refusal(protocol, fs.peer_id)
                    await fs.reset()
                    return
                await handler(fs)
            except Exception as exc:
                log.debug("%s handler failed: %r", protocol, exc)
                if fs is not None:
                    await fs.reset()
                else:
                    try:
                        await stream.reset()
                    except Exception:
                        pass
            else:
                await fs.close()

        self._host.set_stream_handler(TProtocol(protocol), wrapped)

    async def open_stream(
        self,
        peer_id: str,
        protocol: str,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        frame_timeout: float = 30.0,
    ) -> FramedStream:
        """Open a new stream of ``protocol`` to ``peer_id`` (dialing it if needed).

        Gives up after ``STREAM_OPEN_TIMEOUT`` seconds; wrap in ``trio.fail_after`` for less.

        Raises:
            ProtocolRefused: the peer does not serve ``protocol``.
            StreamClosed: the peer is unreachable or the negotiation failed or timed out.
        """
        try:
            pid = ID.from_base58(peer_id)
        except Exception as exc:
            raise StreamClosed(f"not a peer id: {peer_id!r}") from exc
        try:
            with trio.fail_after(STREAM_OPEN_TIMEOUT):
                stream = await self._host.new_stream(pid, [TProtocol(protocol)])
        except trio.TooSlowError as exc:
            raise StreamClosed(f"opening {protocol} to {peer_id} timed out") from exc
        except Exception as exc:
            text = f"{type(exc).__name__}: {exc}"
            if "protocol" in text.lower() and "not" in text.lower():
                raise ProtocolRefused(f"{peer_id} does not serve {protocol}: {text}") from exc
            raise StreamClosed(f"cannot open {protocol} to {peer_id}: {text}") from exc
        return FramedStream(stream, max_frame=max_frame, frame_timeout=frame_timeout)


async def _close_swarm(host: Any) -> None:
    """Close every connection's socket, then the listeners and the rest of the swarm.

    py-libp2p's own close of a connection sleeps 0.2 s (0.1 s in Yamux, 0.1 s in SwarmConn),
    one connection after another: every client's exit, every CLI command, paid it. Closing the
    sockets directly is what that ends in (the peer sees end-of-stream, as when a process
    exits), without the wait; the connections' tasks then go with the host's.
    """
    swarm = host.get_network()
    # GossipSub stops a moment after the swarm (stopped before it, its handlers on live
    # connections fed a stopped service), and a message it hands on in that moment reads the
    # host's addresses: from closed listeners, getsockname raised OSError (EBADF).
    try:
        addrs = host.get_addrs()
    except OSError:
        addrs = []
    host.get_addrs = lambda: list(addrs)
    with trio.CancelScope(shield=True), trio.move_on_after(2.0):
        try:
            conns = [c for cs in swarm.connections.values() for c in cs]
            swarm.connections.clear()
            for conn in conns:
                await _close_quietly(conn.muxed_conn.secured_conn)
            await swarm.close()
        except Exception as exc:
            log.debug("closing the swarm failed: %r", exc)


def _root_cause(exc: BaseException) -> str:
    """What actually failed in a py-libp2p dial, e.g. ``ConnectionRefusedError: [Errno 111]
    Error connecting to ('127.0.0.1', 21129): Connection refused``: py-libp2p wraps it four
    deep (``SwarmDialAllFailedError`` from a ``MultiError`` of ``SwarmException`` from
    ``OpenConnectionError`` from trio's group of connect attempts), and none of the wrappers'
    texts says why."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 16:
        seen.append(cur)
        inner = getattr(cur, "errors", None) or getattr(cur, "exceptions", None)  # the first
        cur = inner[0] if isinstance(inner, list | tuple) and inner else cur.__cause__
    root = seen[-1]
    return f"{type(root).__name__}: {root}"


_DNS_FAMILIES = {"dns": 0, "dns4": socket.AF_INET, "dns6": socket.AF_INET6}


async def resolve_dns(addr: str, *, timeout: float = 5.0) -> str:  # noqa: ASYNC109
    """``/dns4/HOST/tcp/PORT/…`` → ``/ip4/IP/tcp/PORT/…`` (the first address the system
    resolver gives, of the family asked for; ``/dns`` takes either); other addresses unchanged.

    Raises:
        DialFailed: the name does not resolve (within ``timeout``).
    """
    parts = addr.split("/")  # ["", "dns4", host, "tcp", port, ...]
    if len(parts) < 5 or parts[1] not in _DNS_FAMILIES or not parts[4].isdigit():
        return addr
    try:
        with trio.fail_after(timeout):
            found = await trio.socket.getaddrinfo(parts[2], int(parts[4]), family=_DNS_FAMILIES[parts[1]],
                                                  type=socket.SOCK_STREAM)
    except (OSError, trio.TooSlowError) as exc:
        raise DialFailed(f"cannot resolve {parts[2]!r} of {addr}: {str(exc) or 'no answer in time'}") from exc
    family, *_, sockaddr = found[0]
    return "/".join(["", "ip6" if family == socket.AF_INET6 else "ip4", str(sockaddr[0]), *parts[3:]])


def _free_inbound_slot_on_close(
    swarm: Any, clients: ClientConnections, is_member: Callable[[str], bool],
    on_refused: Callable[[str], None],
) -> None:
    """Make each inbound TCP connection hold its inbound slot only while it is open, and
    close a non-member's connection that is one too many from its IP address (``clients``:
    see :mod:`p2pmkt.net.inbound`; ``on_refused`` gets the address).

    py-libp2p 0.8.1 keeps the task that accepted an inbound connection, and with it one of
    the swarm's ``max_connections`` (300) inbound slots, until the *host* stops (its handler
    ends in ``await self.manager.wait_finished()``): after 300 inbound connections in its
    life, however short each was, a node refuses every new one (the dialer sees "failed to
    negotiate the secure protocol"), and every accepted connection's task is kept. Measured:
    the 301st sequential client connection failed. This replaces the handler behind the
    inbound limiter by one that upgrades the connection the same way and then waits for
    *that* connection to close. (The QUIC/WebTransport branch it drops is never used: we
    listen on TCP only.)
    """

    async def handle_inbound(read_write_closer: Any, maddr: Any, _failure_event: Any) -> None:
        remote = swarm._build_remote_multiaddr(read_write_closer)
        if remote is not None and not await swarm.connection_gate.is_allowed(remote):
            await _close_quietly(read_write_closer)
            return
        raw = RawConnection(read_write_closer, False)
        try:
            muxed = await swarm.upgrade_inbound_raw_conn(raw, maddr)
        except Exception as exc:  # a failed handshake is a refused dial, not our error
            log.debug("inbound connection from %s not upgraded: %r", remote, exc)
            await _close_quietly(raw)
            return
        # Only now is the peer known (Noise names it): members are never counted.
        address = raw.get_remote_address()
        ip = str(address[0]) if address else None
        member = is_member(muxed.peer_id.to_base58())
        if not clients.admit(ip, member):
            log.info("closed a connection from %s: more than %d open from that address",
                     ip, clients.per_ip)
            on_refused(str(ip))
            await _close_quietly(muxed)
            return
        try:
            await muxed.event_closed.wait()
        finally:
            clients.release(ip, member)

    swarm._do_handle_inbound_connection = handle_inbound


WRITE_STALL_TIMEOUT = 10.0
"""Seconds one muxer frame may take to reach the socket once its write began; a peer that
stops reading for longer loses the connection (a half-written frame cannot be taken back)."""


def _make_yamux_writes_cancel_safe() -> None:
    """Let no cancellation cut a muxer frame's write short (py-libp2p 0.8.1 ``Yamux``).

    Its ``_write_frame`` holds the connection's write lock and hands the frame to Noise,
    which encrypts message by message (each advancing the nonce) and sends each. Cancelled
    between or inside those sends, the peer got a truncated message or missed a nonce: its
    next decryption failed and it dropped the whole connection, every stream on it. A node
    cancels writes routinely (a subscription's pump when its client unsubscribes, timeouts
    around requests); in CI a client's RPC stream died so, mid-test. Here the write, once it
    holds the lock, is shielded; a frame that cannot be sent within
    :data:`WRITE_STALL_TIMEOUT` closes the connection (its state is unknown). A caller
    cancelled meanwhile sees its cancellation right after. Waiting for the lock stays
    cancellable: nothing is written yet. Installed once, on the class.
    """
    if getattr(Yamux._write_frame, "_p2pmkt_cancel_safe", False):
        return

    async def write_frame(self: Any, data: bytes) -> None:
        async with self._write_lock:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(WRITE_STALL_TIMEOUT) as stall:
                    await self.secured_conn.write(data)
                if stall.cancelled_caught:
                    await _close_quietly(self.secured_conn)
                    raise ConnectionClosedError(
                        f"peer did not read a frame for {WRITE_STALL_TIMEOUT:g} s; connection closed"
                    )
        await trio.lowlevel.checkpoint()

    write_frame._p2pmkt_cancel_safe = True  # type: ignore[attr-defined]
    Yamux._write_frame = write_frame


def _switch_off_auto_connector(swarm: Any) -> None:
    """py-libp2p 0.8.1's AutoConnector aims at half its high watermark (150 connections) and
    dials whatever its peerstore holds, every 30 s and after each disconnect. Our discovery
    (:mod:`p2pmkt.net.discovery`) decides whom a node dials; a second dialer would redial
    peers we dropped and log two lines per attempt. Its tick stays, doing nothing."""

    async def nothing() -> None:
        return None

    swarm.auto_connector.maybe_connect = nothing


async def _close_quietly(conn: Any) -> None:
    try:
        await conn.close()
    except Exception:
        pass


def _libp2p_key_pair(key: PrivateKey) -> KeyPair:
    priv = Secp256k1PrivateKey.from_bytes(key.secret)
    return KeyPair(priv, priv.get_public_key())


@asynccontextmanager
async def open_net(
    key: PrivateKey | None = None,
    config: NetConfig | None = None,
    *,
    members: Members | None = None,
    tx_cache: DecodedTxCache | None = None,
    on_gossip_reject: Callable[[str], None] | None = None,
    head_proposers: Callable[[], Collection[bytes]] | None = None,
    on_inbound_refused: Callable[[str], None] | None = None,
) -> AsyncIterator[Net]:
    """Run a host until the context exits; yield its :class:`Net`.

    Args:
        key: identity (a node's account key); None makes an ephemeral one (clients).
        config: settings; default is a listening node on an ephemeral loopback port.
        members: the consensus allowlist; None is an open network.
        tx_cache: the node's decoded-transaction cache, which gossip then decodes through
            and reuses (see :class:`~p2pmkt.net.pubsub.Gossip`); None decodes afresh.
        on_gossip_reject: called with the reason of each gossip message refused by validation
            (a node counts them in its metrics); duplicates are not refusals.
        head_proposers: the addresses whose signed headers gossip accepts (the chain's
            voters); None accepts any valid signature.
        on_inbound_refused: called with the IP address of each inbound connection closed
            for being one too many from that address (``NetConfig.clients_per_ip``).

    Listeners are up and bootstrap dials have been *started* (not necessarily finished)
    when the context is entered. Register stream handlers right away.
    """
    key = key or PrivateKey.generate()
    config = config or NetConfig()
    kp = _libp2p_key_pair(key)
    _make_yamux_writes_cancel_safe()
    host = new_host(
        key_pair=kp,
        sec_opt={TProtocol(NOISE_ID): NoiseTransport(kp, noise_privkey=new_x25519_key_pair().private_key)},
        muxer_opt={TProtocol(YAMUX_ID): Yamux},
        connection_config=ConnectionConfig(
            max_connections_per_peer=1, min_connections=0, low_watermark=0
        ),
        enable_mDNS=config.mdns,
    )
    clients = ClientConnections(config.clients_per_ip)
    # An open network (members None: dev chain, clients) has no members to spare.
    _free_inbound_slot_on_close(
        host.get_network(), clients,
        lambda peer_id: members is not None and members.is_member(peer_id),
        on_inbound_refused or (lambda ip: None))
    _switch_off_auto_connector(host.get_network())
    async with AsyncExitStack() as stack:
        gossip: Gossip | None = None
        if config.gossip is not None:
            pubsub, router = make_pubsub(host, config.gossip)
            await stack.enter_async_context(background_trio_service(pubsub))
            await stack.enter_async_context(background_trio_service(router))
            await pubsub.wait_until_ready()
            gossip = Gossip(pubsub, config.chain_id, config.gossip, members, tx_cache=tx_cache,
                            on_reject=on_gossip_reject, proposers=head_proposers)
        listen = [multiaddr.Multiaddr(a) for a in config.listen]
        await stack.enter_async_context(host.run(listen_addrs=listen))
        # Leaving host.run() cancels the swarm's tasks but leaves its sockets to the garbage
        # collector (ResourceWarning: unclosed socket); close connections explicitly first.
        stack.push_async_callback(_close_swarm, host)
        net = Net(host, key, config, members, gossip)
        async with trio.open_nursery() as nursery:
            if gossip is not None:
                await nursery.start(gossip.run)
            if config.discovery:
                await nursery.start(net.discovery.run)
            try:
                yield net
            finally:
                nursery.cancel_scope.cancel()
