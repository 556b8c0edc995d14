"""A transaction a follower accepted commits although the leader froze with it in flight.

Real node processes: the leader is frozen (SIGSTOP) before the transaction is submitted to a
follower, so the follower's forwarding call goes to a leader that never answers. The client
does not resubmit. The follower must bring the transaction to the next leader by itself (its
forwarding gives up on a changed leader, gossips what was in flight, sends the new leader its
pool), well before the stale-pool sweep would pass it on again (``STALE_AFTER``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from p2pmkt.chain.genesis import load_genesis  # noqa: E402
from p2pmkt.client import open_client  # noqa: E402
from p2pmkt.node.node import STALE_AFTER  # noqa: E402
from tools.chaos.cluster import Cluster, submitter_key, wait_height, wait_leader  # noqa: E402
from tools.chaos.load import presign  # noqa: E402

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.filterwarnings(r"ignore:Exception ignored in. <socket\.socket:pytest.PytestUnraisableExceptionWarning"),
]


async def test_a_follower_brings_its_transaction_to_the_next_leader_when_the_leader_freezes(
    tmp_path: Path,
) -> None:
    with Cluster(root=tmp_path / "net", submitters=1, rules=False) as cl:
        cl.start()
        leader = await wait_leader(cl, timeout=60)
        follower = next(n for n in cl.names if n != leader)
        assert cl.root is not None
        chain_id = load_genesis(cl.root / "genesis.json").chain_id
        stx = presign([submitter_key(0)], chain_id, 1)[0][0]
        cl.pause(leader)
        try:
            async with open_client(cl.addr(follower)) as c:
                await c.submit_tx(stx)  # pooled at the follower; its forward hangs
                t0 = trio.current_time()
                status = await c.wait_tx_committed(stx.txid, timeout=30)
                took = trio.current_time() - t0
        finally:
            cl.resume(leader)
        assert status.status == "committed", status
        assert took < STALE_AFTER - 2, f"committed after {took:.1f} s: only the stale sweep moved it"
        # The old leader, thawed, follows the new one to the same block.
        assert status.height is not None
        await wait_height(cl.addr(leader), status.height, timeout=60)
