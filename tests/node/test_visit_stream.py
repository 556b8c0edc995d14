"""run_visit_stream (the demo terminal) never drops visits quietly: a pack whose nonce the
node refused is submitted again (it used to be skipped without a word)."""

from __future__ import annotations

from typing import Any

import trio

from p2pmkt.demo import DEMO_MERCHANTS, starting_info
from p2pmkt.errors import NonceError
from p2pmkt.market.model import IndicatorSpec, MarketingInfo
from p2pmkt.node.workload import run_visit_stream
from p2pmkt.testing.keys import dev_key


class Terminal:
    """A Submitter that refuses its first pack once with ``nonce_used``, then takes all."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.taken: list[bytes] = []

    async def submit(self, key: Any, kind: str, payload: dict[str, Any]) -> bytes:
        self.seen.append(payload["visits"])
        if len(self.seen) == 1:
            raise NonceError("nonce 3 already used; next is 4", reason="nonce_used")
        self.taken.append(payload["visits"])
        await trio.lowlevel.checkpoint()
        return b"\x00" * 32

    async def marketing(self, merchant: str) -> MarketingInfo | None:
        return starting_info(merchant)

    async def indicator(self, merchant: str, name: str) -> IndicatorSpec | None:
        return None


async def test_a_pack_refused_for_its_nonce_is_submitted_again_and_counted() -> None:
    terminal = Terminal()
    counted: list[int] = []
    with trio.move_on_after(10) as scope:
        async with trio.open_nursery() as nursery:
            def count(n: int) -> None:
                counted.append(n)
                if len(counted) == 3:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(lambda: run_visit_stream(
                [(terminal, dev_key("terminal"))], sorted(DEMO_MERCHANTS), visits_per_second=20_000,
                max_per_tx=500, counter=count))
    assert not scope.cancelled_caught, "three packs were not counted within 10 s"
    assert terminal.seen[0] == terminal.seen[1]  # the refused pack, again
    assert terminal.taken[: len(counted)] == terminal.seen[1 : len(counted) + 1]
    assert len(counted) == 3 and all(n > 0 for n in counted)
