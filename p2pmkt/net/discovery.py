"""Finding and keeping peers: bootstrap, peer exchange, optional mDNS, reconnect loop.

Theory of operation
-------------------
:class:`Discovery` keeps ``known``: the p2pmkt nodes (peer id → listen multiaddrs) this node
wants to stay connected to. It is filled from three sources:

* the bootstrap list of the config;
* **peer exchange** on ``/p2pmkt/peers/1.0.0``: one request frame
  ``{"addrs": [multiaddr…]}`` (the asker's own listen addresses) answered by one frame
  ``{"peers": [{"id": peer id, "addrs": [multiaddr…]}, …]}`` (the answerer and everything in
  its ``known``). Each side learns the other, so a node started with one bootstrap address
  learns everyone its bootstrap peer knows within one exchange, and the others learn it;
* mDNS (``NetConfig.mdns``), whose callbacks arrive on a zeroconf thread and are passed into
  trio through a memory channel.

On a permissioned network only chain members (:class:`~p2pmkt.net.members.Members`) are ever
added to ``known`` or handed out, and only members may ask; on an open network everyone.

**Which addresses a node hands out.** Its ``announce`` addresses when configured (a public
address in front of NAT, or a DNS name), else its listen addresses. A server usually listens
on ``/ip4/0.0.0.0`` ("every interface of mine"), an address that means the dialler's own
machine to anyone else: dialled as is, it never reaches the node (on a real network, nodes
that bootstrapped from the same peer never connected to each other; tests/net pin this in
separate network namespaces). So the receiver of an exchange reads an unspecified host in the
*sender's own* addresses as the IP the sender's connection came from (:func:`resolve_addrs`),
and drops unspecified hosts anywhere else.

The reconnect loop (every ``reconnect_interval`` s, or at once when something new is learned)
dials each known peer that is not connected, trying each of its addresses in turn (the one
that last connected first), after ``unblock_peer`` — py-libp2p's own
bootstrap gives up on a peer for good after three failures and blocks redials for 60 s, so a
validator that restarts would never be reconnected. Dials run concurrently, one at a time per
peer. The exchange loop asks every connected known peer every ``pex_interval`` s.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import multiaddr
import trio
from libp2p.discovery.events.peerDiscovery import peerDiscovery
from libp2p.peer.peerinfo import info_from_p2p_addr

from p2pmkt.config import unspecified_family, with_host
from p2pmkt.errors import DecodeError, P2pmktError
from p2pmkt.net._trio import TaskStatus
from p2pmkt.net.errors import NetworkError
from p2pmkt.net.stream import FramedStream
from p2pmkt.wire.cbor import decode, encode

if TYPE_CHECKING:
    from p2pmkt.net.host import Net

log = logging.getLogger(__name__)

PEX_PROTOCOL = "/p2pmkt/peers/1.0.0"
MAX_PEX_FRAME = 256 * 1024
MAX_PEERS = 256
MAX_ADDRS = 8
MAX_ADDR_LEN = 256


def _clean_addrs(value: Any) -> list[str] | None:
    if not isinstance(value, list) or len(value) > MAX_ADDRS:
        return None
    out: list[str] = []
    for a in value:
        if not isinstance(a, str) or len(a) > MAX_ADDR_LEN:
            return None
        try:
            multiaddr.Multiaddr(a)
        except Exception:
            return None
        out.append(a)
    return out


def _strip_p2p(addr: str) -> str:
    return addr.split("/p2p/")[0]


def resolve_addrs(addrs: list[str], observed_ip: str | None) -> list[str]:
    """A peer's advertised addresses as another machine can dial them (pure).

    ``/ip4/0.0.0.0/…`` and ``/ip6/::/…`` mean "every interface of the sender's machine": each
    becomes ``observed_ip`` (the IP the sender's connection came from) when that IP is of the
    same family, and is dropped otherwise. Other addresses pass unchanged; duplicates go.
    """
    observed_family = None if observed_ip is None else "ip6" if ":" in observed_ip else "ip4"
    out: list[str] = []
    for addr in addrs:
        family = unspecified_family(addr)
        if family is not None:
            addr = with_host(addr, observed_ip) if family == observed_family and observed_ip else ""
        if addr and addr not in out:
            out.append(addr)
    return out


class Discovery:
    """Known peers plus the loops that keep them connected (owned by :class:`Net`)."""

    def __init__(self, net: Net) -> None:
        self._net = net
        self.known: dict[str, list[str]] = {}
        self._not_nodes: set[str] = set()
        self._dialing: set[str] = set()
        self._first: dict[str, str] = {}  # peer id → the address that last connected
        self._unreachable: dict[str, str] = {}  # peer id → why its dials fail (logged once)
        self._wake = trio.Event()

    def add(self, peer_id: str, addrs: list[str]) -> bool:
        """Remember a node; True if it is new. Ignores ourselves and (on a permissioned
        network) non-members."""
        if peer_id == self._net.peer_id or not self._net.allowed(peer_id) or not addrs:
            return False
        plain = [_strip_p2p(a) for a in addrs]
        new = peer_id not in self.known
        if self.known.get(peer_id) != plain:
            self.known[peer_id] = plain
            self._net.add_peer_addrs(peer_id, plain)
            self._wake.set()
        return new

    def dial_order(self, peer_id: str) -> list[str]:
        """The addresses to try for ``peer_id``, the one that last connected first.

        A node may listen on several addresses of which only some reach us (a private and
        a public interface, or a link to one host only): dialling just the first one it
        lists left such pairs never connected.
        """
        addrs = self.known.get(peer_id, [])
        first = self._first.get(peer_id)
        if first in addrs:
            addrs = [first] + [a for a in addrs if a != first]
        return addrs

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve peer exchange and run the loops until cancelled."""
        net = self._net
        net.handle(PEX_PROTOCOL, self._serve, max_frame=MAX_PEX_FRAME, frame_timeout=5.0)
        for addr in net.config.bootstrap:
            try:
                info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
            except Exception:
                log.warning("ignoring bootstrap address without /p2p/<peer id>: %s", addr)
                continue
            self.add(info.peer_id.to_base58(), [_strip_p2p(addr)])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._reconnect_loop, nursery)
            nursery.start_soon(self._pex_loop)
            if net.config.mdns:
                nursery.start_soon(self._mdns_pump)
            task_status.started()

    async def _reconnect_loop(self, nursery: trio.Nursery) -> None:
        while True:
            self._wake = trio.Event()
            for peer_id in list(self.known):
                if peer_id in self._unreachable and self._net.is_connected(peer_id):
                    del self._unreachable[peer_id]  # it dialled us
                    log.info("connected to %s again", peer_id)
                if peer_id not in self._dialing and not self._net.is_connected(peer_id):
                    self._dialing.add(peer_id)
                    nursery.start_soon(self._dial, peer_id)
            with trio.move_on_after(self._net.config.reconnect_interval):
                await self._wake.wait()

    async def _dial(self, peer_id: str) -> None:
        """Try the peer's addresses in :meth:`dial_order` until one connects.

        The first failure after a success (or the very first) is logged once as a warning,
        naming the address and the error (a node that is down, a wrong port, a bootstrap
        address with the wrong peer id); the retries every ``reconnect_interval`` are debug.
        """
        try:
            failures = []
            for addr in self.dial_order(peer_id):
                try:
                    await self._net.connect(f"{addr}/p2p/{peer_id}")
                except P2pmktError as exc:
                    log.debug("dial %s at %s failed: %s", peer_id, addr, exc)
                    failures.append(f"{addr}: {exc}")
                    continue
                self._first[peer_id] = addr
                if self._unreachable.pop(peer_id, None) is not None:
                    log.info("connected to %s at %s again", peer_id, addr)
                log.debug("connected to %s at %s", peer_id, addr)
                await self._exchange(peer_id)
                return
            if failures and peer_id not in self._unreachable:
                self._unreachable[peer_id] = failures[0]
                log.warning("cannot reach %s (%s); retrying every %g s, quietly until it answers",
                            peer_id, "; ".join(failures)[:400], self._net.config.reconnect_interval)
        except P2pmktError as exc:
            log.debug("peer exchange with %s failed: %s", peer_id, exc)
        finally:
            self._dialing.discard(peer_id)

    async def _pex_loop(self) -> None:
        while True:
            await trio.sleep(self._net.config.pex_interval)
            for peer_id in self._net.connected_peers():
                if peer_id in self._not_nodes or not self._net.allowed(peer_id):
                    continue
                try:
                    await self._exchange(peer_id)
                except P2pmktError as exc:
                    log.debug("peer exchange with %s failed: %s", peer_id, exc)

    def own_addrs(self) -> list[str]:
        """What this node hands out as its addresses (module docstring): the configured
        ``announce`` ones, else its listen addresses (without ``/p2p/``)."""
        announce = self._net.config.announce
        return list(announce or [_strip_p2p(a) for a in self._net.addrs()])[:MAX_ADDRS]

    def _entries(self) -> list[dict[str, Any]]:
        own = self.own_addrs()
        out: list[dict[str, Any]] = [{"id": self._net.peer_id, "addrs": own}] if own else []
        for pid, addrs in list(self.known.items())[: MAX_PEERS - 1]:
            out.append({"id": pid, "addrs": addrs[:MAX_ADDRS]})
        return out

    async def _exchange(self, peer_id: str) -> None:
        """Ask ``peer_id`` whom it knows; remember the answer.

        Raises:
            NetworkError: stream failure (a peer that refuses the protocol is remembered
                as not a node and not asked again).
        """
        try:
            stream = await self._net.open_stream(
                peer_id, PEX_PROTOCOL, max_frame=MAX_PEX_FRAME
            )
        except NetworkError:
            if self._net.is_connected(peer_id) and peer_id not in self.known:
                self._not_nodes.add(peer_id)
            raise
        try:
            await stream.write_frame(encode({"addrs": self.own_addrs()}))
            with trio.fail_after(3.0):
                payload = await stream.read_frame()
            if payload is None:
                raise DecodeError("peer closed the exchange without answering")
            self._merge(decode(payload, max_size=MAX_PEX_FRAME), peer_id, stream.remote_ip())
        except trio.TooSlowError:
            log.debug("peer exchange with %s timed out", peer_id)
        except DecodeError as exc:
            log.debug("bad peer exchange answer from %s: %s", peer_id, exc)
        finally:
            await stream.close()

    def _merge(self, value: Any, answerer: str, answerer_ip: str | None) -> None:
        """Remember the peers of an exchange answer from ``answerer``, whose connection
        comes from ``answerer_ip``: the one IP an unspecified address can stand for, and
        only in the answerer's own entry."""
        peers = value.get("peers") if isinstance(value, dict) else None
        if not isinstance(peers, list):
            raise DecodeError('peer exchange answer must be {"peers": [...]}')
        for entry in peers[:MAX_PEERS]:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                continue
            addrs = _clean_addrs(entry.get("addrs"))
            if addrs:
                observed = answerer_ip if entry["id"] == answerer else None
                self.add(entry["id"], resolve_addrs(addrs, observed))

    async def _serve(self, stream: FramedStream) -> None:
        if not self._net.allowed(stream.peer_id):
            return
        with trio.fail_after(5.0):
            payload = await stream.read_frame()
        if payload is None:
            return
        try:
            value = decode(payload, max_size=MAX_PEX_FRAME)
        except DecodeError:
            return
        addrs = _clean_addrs(value.get("addrs")) if isinstance(value, dict) else None
        if addrs:
            self.add(stream.peer_id, resolve_addrs(addrs, stream.remote_ip()))
        await stream.write_frame(encode({"peers": self._entries()}))

    async def _mdns_pump(self) -> None:
        token = trio.lowlevel.current_trio_token()
        send, recv = trio.open_memory_channel[Any](64)

        def on_found(info: Any) -> None:  # zeroconf thread
            try:
                trio.from_thread.run_sync(send.send_nowait, info, trio_token=token)
            except Exception:
                pass

        peerDiscovery.register_peer_discovered_handler(on_found)
        try:
            async for info in recv:
                addrs = [str(a) for a in info.addrs]
                self.add(info.peer_id.to_base58(), addrs)
        finally:
            peerDiscovery.unregister_peer_discovered_handler(on_found)
