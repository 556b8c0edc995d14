"""Network benchmark: RPC round trips and gossip transaction throughput between processes.

Starts two fake-node processes (tests/net/fakenode.py: real p2pmkt networking, in-memory
chain): ``n0`` (leader, cuts a block every 100 ms) and ``n1`` (bootstrapped from n0). This
process is the client. It measures, in one run:

1. raw py-libp2p stream round trips (64-byte echo on one stream, no p2pmkt code on the path);
2. RPC round trips (``chain.head``) sequentially on one stream, and with 8 concurrent callers
   pipelining on that stream;
3. transactions per second through gossip: N pre-signed transactions are submitted to n1
   (pipelined ``tx.submit``), n1 gossips them in bundles to n0, n0 puts them in blocks; the
   clock stops when n0's block events have covered all N.

Run: ``.venv/bin/python tools/bench/net.py [--txs 3000] [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import trio

import p2pmkt.net  # noqa: F401  (sets PY_YAMUX_RELEASE_ON_READ before libp2p loads)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "net"))

from fakenode import CHAIN, ECHO_PROTOCOL, dev_key  # noqa: E402
from libp2p.peer.id import ID  # noqa: E402  (raw baseline only)

from p2pmkt.chain.tx import make_tx  # noqa: E402
from p2pmkt.client import open_client  # noqa: E402
from p2pmkt.net import NetConfig, open_net, peer_id_of  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_nodes() -> tuple[list[subprocess.Popen[str]], dict[str, str]]:
    ports = {"n0": _port(), "n1": _port()}
    addr = {n: f"/ip4/127.0.0.1/tcp/{p}/p2p/{peer_id_of(dev_key(n).public_key.compressed)}"
            for n, p in ports.items()}
    procs = []
    for n in ("n0", "n1"):
        args = [sys.executable, str(ROOT / "tests/net/fakenode.py"), "--name", n, "--port",
                str(ports[n]), "--members", "n0,n1", "--block-ms", "100"]
        args += ["--leader"] if n == "n0" else ["--bootstrap", addr["n0"]]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                      env=dict(os.environ, PYTHONPATH=str(ROOT))))
    for p in procs:
        assert p.stdout is not None
        if not select.select([p.stdout], [], [], 30)[0]:
            raise SystemExit("node did not start")
        json.loads(p.stdout.readline())
    return procs, addr


async def bench(addr: dict[str, str], seconds: float, n_txs: int) -> dict[str, float]:
    out: dict[str, float] = {}
    cfg = NetConfig(listen=(), gossip=None, discovery=False)
    async with open_net(config=cfg) as net:
        peer = await net.connect(addr["n0"])
        stream = await net._host.new_stream(ID.from_base58(peer), [ECHO_PROTOCOL])
        msg = b"x" * 64
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            await stream.write(msg)
            got = b""
            while len(got) < len(msg):
                got += await stream.read(65536)
            count += 1
        out["raw_stream_rt_per_s"] = count / (time.perf_counter() - t0)
        await stream.close()

    async with open_client(addr["n0"]) as c:
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            await c.head()
            count += 1
        out["rpc_rt_per_s_sequential"] = count / (time.perf_counter() - t0)
        count = 0
        t0 = time.perf_counter()

        async def caller() -> None:
            nonlocal count
            while time.perf_counter() - t0 < seconds:
                await c.head()
                count += 1

        async with trio.open_nursery() as n:
            for _ in range(8):
                n.start_soon(caller)
        out["rpc_rt_per_s_8_pipelined"] = count / (time.perf_counter() - t0)

    key = dev_key("bench")
    txs = [make_tx(key, CHAIN, i, "visit.batch", {"i": i, "pad": "v" * 100}) for i in range(n_txs)]
    out["tx_bytes"] = len(txs[0].encode())
    async with open_client(addr["n0"]) as c0, open_client(addr["n1"]) as c1, \
            c0.subscribe(["block"]) as events:
            t0 = time.perf_counter()
            async with trio.open_nursery() as n:
                async def submit(part: list[bytes]) -> None:
                    for data in part:
                        await c1.submit_tx(data)

                wire = [t.encode() for t in txs]
                for k in range(8):
                    n.start_soon(submit, wire[k::8])
            out["submit_tx_per_s"] = n_txs / (time.perf_counter() - t0)
            seen = 0
            with trio.fail_after(120):
                async for ev in events:
                    seen += ev.data["txs"]
                    if seen >= n_txs:
                        break
            out["gossip_committed_tx_per_s"] = n_txs / (time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--txs", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    procs, addr = start_nodes()
    try:
        res = trio.run(bench, addr, args.seconds, args.txs)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(10)
            if p.stdout:
                p.stdout.close()
    print(f"raw py-libp2p stream echo (64 B, 1 stream):  {res['raw_stream_rt_per_s']:8.0f} round trips/s")
    print(f"RPC chain.head, sequential:                 {res['rpc_rt_per_s_sequential']:8.0f} round trips/s")
    print(f"RPC chain.head, 8 callers pipelined:        {res['rpc_rt_per_s_8_pipelined']:8.0f} round trips/s")
    print(f"tx.submit to n1 ({res['tx_bytes']:.0f} B txs, 8 callers):      {res['submit_tx_per_s']:8.0f} tx/s")
    print(f"gossip n1 -> n0, committed at n0 ({args.txs} txs): {res['gossip_committed_tx_per_s']:8.0f} tx/s")


if __name__ == "__main__":
    main()
