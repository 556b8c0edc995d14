"""The console's client: the synchronous client plus signing, waiting and readable results.

Results are plain dicts (what the wire protocol returns), so they pretty-print and tab-complete
in the REPL; ``send`` signs with the next nonce of the key (asked of the node with
``account.get``), submits, and waits until the transaction is committed or rejected.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from p2pmkt.client import connect
from p2pmkt.crypto.keys import PrivateKey


class ConsoleClient:
    def __init__(self, sync: Any) -> None:
        self._c = sync

    @classmethod
    def connect(cls, addr: str, key: PrivateKey | None = None) -> ConsoleClient:
        return cls(connect(addr, key))

    def close(self) -> None:
        self._c.close()

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Any wire-protocol method (docs/PROTOCOL.md), e.g. ``call("node.info")``."""
        return self._c.call(method, params)

    def info(self) -> dict[str, Any]:
        return dict(self._c.info().to_wire())

    def head(self) -> dict[str, Any]:
        return dict(self._c.head().to_wire())

    def block(self, which: int | bytes) -> dict[str, Any] | None:
        blk = self._c.block(which) if isinstance(which, int) else self._c.block(hash=which)
        if blk is None:
            return None
        h = blk.header
        return {
            "height": h.height, "hash": blk.hash, "parent": h.parent, "time": h.time,
            "proposer": h.proposer, "state_root": h.state, "txroot": h.txroot,
            "txs": [{"txid": t.txid, "from": t.tx.sender, "nonce": t.tx.nonce, "kind": t.tx.kind}
                    for t in blk.txs],
        }

    def tx(self, txid: bytes) -> dict[str, Any] | None:
        st = self._c.tx(txid)
        return None if st is None else dict(st.to_wire())

    def market_info(self, merchant: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._c.market_info(merchant)
        return result

    def market_history(self, merchant: str, *, limit: int = 10) -> list[dict[str, Any]]:
        return list(self._c.market_history(merchant, limit=limit))

    def reports(self, merchant: str, *, limit: int = 10) -> list[dict[str, Any]]:
        return list(self._c.reports(merchant, limit=limit))

    def next_nonce(self, address: bytes) -> int:
        return int(self._c.call("account.get", {"address": bytes(address)})["pending_nonce"])

    def send(self, key: PrivateKey, kind: str, payload: dict[str, Any], *, wait: bool = True,
             timeout: float = 30.0) -> dict[str, Any]:
        """Sign ``payload`` as ``kind``, submit it; by default wait for its block."""
        from p2pmkt.chain.tx import make_tx

        info = self._c.info()
        stx = make_tx(key, info.chain, self.next_nonce(key.address), kind, payload)
        txid = self._c.submit_tx(stx)
        if not wait:
            return {"txid": txid, "status": "pending"}
        import trio

        try:
            return dict(self._c.wait_tx_committed(txid, timeout).to_wire())
        except trio.TooSlowError as exc:
            # Not "unreachable": the node took the transaction, which may yet commit.
            raise TimeoutError(
                f"transaction {txid.hex()} was taken by the node but not committed within "
                f"{timeout:g} s; it may still commit (no leader? see `p2pmkt node status`): look "
                f"it up with tx(bytes.fromhex('{txid.hex()}')) in `p2pmkt console` before "
                "sending it again") from exc

    def events(self, kinds: Iterable[str]) -> Iterator[dict[str, Any]]:
        """Events as they arrive, one batch at a time (Ctrl-C ends the iteration)."""
        kinds = list(kinds)
        while True:
            for ev in self._c.next_events(1, kinds, timeout=3600):
                yield {"event": ev.kind, **ev.data}
