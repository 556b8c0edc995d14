"""Network services of the single-process dev chain: the client wire protocol only.

The dev chain has no peers and no Raft; it still serves ``/p2pmkt/rpc/1.0.0`` so that the
console, the CLI and client libraries work against it exactly as against a network node.
"""

from __future__ import annotations

from typing import Any, TextIO

import trio

from p2pmkt.crypto.keys import address_hex
from p2pmkt.node.api import ChainApi, EventHub
from p2pmkt.node.chain import ChainService


async def serve_dev_rpc(
    chain: ChainService,
    listen: str,
    out: TextIO,
    hub: EventHub,
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the wire protocol for ``chain`` on ``listen`` until cancelled; prints the address."""
    from p2pmkt.chain.dev import dev_key
    from p2pmkt.net import NetConfig, open_net, run_rpc_server

    key = dev_key("validator")
    config = NetConfig(chain_id=chain.genesis.chain_id, listen=(listen,), gossip=None, discovery=False)
    async with open_net(key, config) as net:
        api = ChainApi(chain, hub, peer_id=net.peer_id, address=address_hex(key.address))
        async with trio.open_nursery() as nursery:
            await nursery.start(run_rpc_server, net, api)
            for addr in net.addrs():
                print(f"wire protocol at {addr}  (p2pmkt console --connect {addr})", file=out, flush=True)
            task_status.started(net.addrs())
            await trio.sleep_forever()
