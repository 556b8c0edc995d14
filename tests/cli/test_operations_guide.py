"""docs/OPERATIONS.md, followed as an operator would: keys, a genesis everybody checks, node
directories from ``node init``, ``node run`` processes that find each other from one bootstrap
address while listening on every interface, then a fourth organisation added by transaction
(``member add``), started, made a learner and promoted to voter.

All on 127.0.0.1 (the namespace test in tests/net shows the same discovery across separate
network stacks).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from p2pmkt.chain.genesis import load_genesis
from p2pmkt.client import open_client
from p2pmkt.demo import rules_toml

from ._procs import CLI, ENV, free_port_block, run_cli, stop_group

pytestmark = pytest.mark.slow


def _ok(*args: str | Path, cwd: Path) -> str:
    r = run_cli(*args, cwd=cwd)
    assert r.returncode == 0, f"p2pmkt {' '.join(map(str, args))} → {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


class Nodes:
    """``p2pmkt node run`` processes started by the test, each in its own process group."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, name: str) -> None:
        with (self.cwd / f"{name}.log").open("w") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(
                [*CLI, "node", "run", "--config", f"{name}/config.toml"], cwd=self.cwd,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=ENV,
                start_new_session=True)

    def log(self, name: str) -> str:
        return (self.cwd / f"{name}.log").read_text()


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Nodes]:
    ns = Nodes(tmp_path)
    try:
        yield ns
    finally:
        for proc in ns.procs.values():
            stop_group(proc, signal.SIGTERM)


async def _info(addr: str) -> dict | None:
    try:
        with trio.fail_after(5):
            async with open_client(addr) as c:
                return dict(await c.call("node.info"))
    except Exception:
        return None


async def _until(what: str, check, timeout: float = 60.0):  # noqa: ASYNC109
    """Poll ``check()`` (async) until it returns something truthy, within ``timeout`` s."""
    last = None
    with trio.move_on_after(timeout):
        while True:
            last = await check()
            if last:
                return last
            await trio.sleep(0.3)
    raise AssertionError(f"{what}: not so within {timeout:g} s (last: {last!r})")


async def test_a_network_set_up_by_the_operations_guide_runs_and_takes_a_new_validator(
    tmp_path: Path, nodes: Nodes
) -> None:
    cwd = tmp_path
    names = ["platform", "acme", "globex", "initech"]
    for n in names:  # 1. each organisation's key, and its public half for the coordinator
        _ok("key", "new", f"{n}.key", cwd=cwd)
        (cwd / f"{n}.json").write_text(_ok("key", "show", f"{n}.key", cwd=cwd))
    ids = {n: json.loads((cwd / f"{n}.json").read_text()) for n in names}

    # 2. the genesis (initech joins later, by transaction) and 3. its hash, checked
    out = _ok("genesis", "new", "genesis.json", "--chain-id", "ops-guide-1",
              "--member", "platform", "platform.json", "platform",
              "--member", "acme", "acme.json", "merchant-ops:acme,merchant-tech:acme",
              "--member", "globex", "globex.json", "merchant-ops:globex,merchant-tech:globex",
              cwd=cwd)
    shown = json.loads(_ok("genesis", "show", "genesis.json", "--json", cwd=cwd))
    assert shown["hash"] == load_genesis(cwd / "genesis.json").hash.hex()
    assert shown["hash"] in out

    # 4. node directories: every node listens on all interfaces, the others know only node 1
    port = free_port_block(len(names))
    metrics = free_port_block(len(names))
    boot = f"/ip4/127.0.0.1/tcp/{port}/p2p/{ids['platform']['peer_id']}"

    def init(i: int, n: str, *more: str) -> None:
        extra = [*more] if i == 0 else ["--bootstrap", boot, *more]
        _ok("node", "init", n, "--genesis", "genesis.json", "--name", n, "--key", f"{n}.key",
            "--listen", f"/ip4/0.0.0.0/tcp/{port + i}", "--metrics", f"127.0.0.1:{metrics + i}",
            *extra, cwd=cwd)

    addr = {n: f"/ip4/127.0.0.1/tcp/{port + i}/p2p/{ids[n]['peer_id']}" for i, n in enumerate(names)}
    for i, n in enumerate(names[:3]):
        init(i, n)
        nodes.start(n)  # 5.

    # 6. every node sees the two others and they agree on a leader
    async def connected_with_leader() -> bool:
        infos = [await _info(addr[n]) for n in names[:3]]
        return all(i is not None and len(i["peers"]) == 2 and i["leader"] for i in infos) and \
            len({i["leader"] for i in infos if i}) == 1

    await _until("three nodes connected with one leader", connected_with_leader)
    status = json.loads(_ok("node", "status", "--connect", addr["acme"], "--json", cwd=cwd))
    assert status["roles"] == ["merchant-ops:acme", "merchant-tech:acme"] and len(status["peers"]) == 2
    text = _ok("node", "status", "--connect", addr["acme"], cwd=cwd)
    assert "peers    2 connected member(s)" in text and f"node     {ids['acme']['address']}" in text

    # Membership changes: initech added (merchant-ops only), started with mapping rules, made
    # learner, then voter; its merchant-tech role is granted while its node runs.
    initech = ids["initech"]["address"]
    platform = ["--connect", addr["platform"], "--key", "platform.key"]
    _ok("member", "add", "initech", "initech.json", "--role", "merchant-ops:initech", *platform, cwd=cwd)
    show = json.loads(_ok("member", "show", initech, *platform[:2], cwd=cwd))
    assert show["member"] is True and show["roles"] == ["merchant-ops:initech"]
    (cwd / "rules-initech.toml").write_text(rules_toml("initech"))
    init(3, "initech", "--rules", "rules-initech.toml")
    nodes.start("initech")
    _ok("member", "validator", initech, "learner", *platform, cwd=cwd)
    assert json.loads(_ok("member", "show", initech, *platform[:2], cwd=cwd))["validator"] == "learner"

    async def caught_up() -> bool:
        a, b = await _info(addr["platform"]), await _info(addr["initech"])
        return bool(a and b and b["height"] >= a["height"] > 0 and len(b["peers"]) == 3)

    await _until("initech connected to all and caught up", caught_up)
    # Its roles are chain state (not the genesis file's): its node reports them, and its agent
    # waits for a merchant-tech role, then starts when one is granted.
    assert (await _info(addr["initech"]))["roles"] == ["merchant-ops:initech"]
    assert "agent_waiting" in nodes.log("initech")
    _ok("member", "grant", initech, "merchant-tech:initech", *platform, cwd=cwd)

    async def agent_started() -> bool:
        info = await _info(addr["initech"])
        return bool(info and "merchant-tech:initech" in info["roles"]
                    and "agent_started merchant=initech" in nodes.log("initech"))

    await _until("initech's agent started after the grant", agent_started)
    _ok("member", "validator", initech, "voter", *platform, cwd=cwd)
    assert json.loads(_ok("member", "show", initech, *platform[:2], cwd=cwd))["validator"] == "voter"

    # The four nodes hold the same chain: same hash at the height every one has reached.
    async def same_chain() -> bool:
        heads = []
        for n in names:
            try:
                async with open_client(addr[n]) as c:
                    heads.append(await c.head())
            except Exception:
                return False
        low = min(h.height for h in heads)
        hashes = set()
        for n in names:
            async with open_client(addr[n]) as c:
                block = await c.block(low)
                hashes.add(None if block is None else bytes(block.hash))
        return len(hashes) == 1 and None not in hashes

    await _until("one chain on all four nodes", same_chain)
    assert re.search(r"advertised=/ip4/0\.0\.0\.0/tcp/\d+", nodes.log("acme"))  # listens on all
