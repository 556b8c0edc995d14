"""Raft messages and block sync pass only between nodes that hold the same genesis (real py-libp2p hosts).

Same keys and chain id but another genesis file (an operator's stale copy, a parameter
changed) used to be enough to vote and acknowledge entries, then apply the blocks by other
rules. Each Raft stream now opens with a hello naming the sender's genesis hash; a receiver
with another one resets the stream, takes nothing from it, and reports the peer."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import trio

from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.net import Members, NetConfig, open_net, open_raft_transport
from p2pmkt.types import NodeId

CFG = NetConfig(gossip=None, discovery=False)

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tools.chaos: the multi-process cluster


def _node_id(key: PrivateKey) -> NodeId:
    return NodeId("0x" + key.address.hex())


async def _exchange(genesis_a: bytes, genesis_b: bytes) -> tuple[list[bytes], list[str]]:
    """A sends three messages to B; returns what B received within a moment and whom B refused."""
    ka, kb = PrivateKey.from_seed("hello/a"), PrivateKey.from_seed("hello/b")
    members = Members([ka.public_key.compressed, kb.public_key.compressed])
    refused: list[str] = []
    got: list[bytes] = []
    async with open_net(ka, CFG, members=members) as a, open_net(kb, CFG, members=members) as b, \
            open_raft_transport(a, genesis=genesis_a) as ta, \
            open_raft_transport(b, genesis=genesis_b, on_refused=refused.append) as tb:
        await a.connect(b.addrs()[0])
        with trio.move_on_after(3):
            while len(got) < 3 and not refused:
                await ta.send(_node_id(kb), b"append %d" % len(got))
                with trio.move_on_after(0.2):
                    _, data = await tb.incoming.receive()
                    got.append(data)
        return got, refused


async def test_members_with_the_same_genesis_exchange_raft_messages() -> None:
    same = hashlib.sha256(b"genesis one").digest()
    got, refused = await _exchange(same, same)
    assert got[:1] == [b"append 0"] and len(got) == 3 and refused == []


async def test_a_member_with_another_genesis_is_refused_and_reported() -> None:
    ka = PrivateKey.from_seed("hello/a")
    got, refused = await _exchange(hashlib.sha256(b"genesis one").digest(),
                                   hashlib.sha256(b"genesis two").digest())
    assert got == []
    from p2pmkt.crypto.peerid import peer_id_of

    assert refused[:1] == [peer_id_of(ka.public_key.compressed)]


class _Blocks:
    """A block provider with no blocks and head 7 (the answer's shape is what matters)."""

    async def head_height(self) -> int:
        return 7

    async def blocks(self, start: int, end: int) -> list[bytes]:
        return []


async def test_block_sync_serves_only_askers_of_the_same_genesis() -> None:
    """A node catching up must not fetch another chain's blocks, even from a member."""
    from p2pmkt.errors import RemoteError
    from p2pmkt.net import fetch_blocks, run_sync_server

    one, two = hashlib.sha256(b"genesis one").digest(), hashlib.sha256(b"genesis two").digest()
    async with open_net(config=CFG) as server, open_net(config=CFG) as asker, trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: run_sync_server(
            server, _Blocks(), members_only=False, genesis=one, task_status=task_status))
        peer = await asker.connect(server.addrs()[0])
        assert await fetch_blocks(asker, peer, 1, 3, genesis=one) == ([], 7)
        with pytest.raises(RemoteError, match="another chain"):
            await fetch_blocks(asker, peer, 1, 3, genesis=two)
        assert await fetch_blocks(asker, peer, 1, 3) == ([], 7)  # an asker that names none
        nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_a_node_started_with_another_genesis_file_takes_no_part(tmp_path) -> None:
    """Three node processes; node3's genesis file differs from the others' in one parameter
    (same chain id, same members: an operator's stale copy). node1 and node2 elect a leader
    and commit blocks; node3 applies none of them, and the refusals are logged with why."""
    import json
    import re

    from p2pmkt.client import open_client
    from tools.chaos.cluster import Cluster, infos, submitter_key, wait_height
    from tools.chaos.load import presign

    with Cluster(root=tmp_path / "net", n=3, submitters=1, rules=False) as cl:
        node3 = cl.net.node("node3")
        other = json.loads((cl.root / "genesis.json").read_text())
        other["params"]["block_interval_ms"] = 250
        (node3.dir / "genesis-stale.json").write_text(json.dumps(other))
        node3.config.write_text(re.sub(r'^genesis = .*$', 'genesis = "genesis-stale.json"',
                                       node3.config.read_text(), flags=re.M))
        cl.start()
        (stx,) = presign([submitter_key(0)], cl.net.chain_id, 1)[0]
        with trio.fail_after(60):
            while True:
                try:
                    async with open_client(cl.addr("node1")) as c:
                        await c.submit_tx(stx)
                        break
                except Exception:
                    await trio.sleep(0.3)
        height = await wait_height(cl.addr("node2"), 1, timeout=60)
        assert height >= 1
        seen = await infos(cl, ["node3"])
        assert seen["node3"] is not None and seen["node3"]["height"] == 0
        # Whoever sent first (the leader's heartbeats to node3, node3's campaign) was refused
        # and the receiver said why; poll the logs, written by other processes.
        with trio.fail_after(30):
            while not any(  # noqa: ASYNC110 - other processes' files
                    "refused Raft messages from member" in (text := cl.net.node(n).log_file.read_text())
                    and "another genesis file" in text for n in ("node1", "node2", "node3")):
                await trio.sleep(0.2)
