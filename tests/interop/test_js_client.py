"""The JavaScript client of ``examples/js-client`` (written from docs/PROTOCOL.md alone, on
js-libp2p) against a real ``p2pmkt dev`` process.

``node demo.mjs ADDR`` checks the document's worked examples byte for byte, connects, has a
fresh key refused, submits a ``visit.batch`` and a ``visit.pack`` (dev key ``terminal``) and a
``market.update`` (dev key ``acme-tech``), waits for their blocks and sends bad transactions,
bad requests and malformed frames; it prints one JSON object. These tests then check what it
claims through the Python client, independently: the transactions are in their blocks, the
nonce and the marketing information changed, and the node still serves.

Needs Node.js 20+ and npm (skipped without them); ``npm ci`` runs when ``node_modules`` is
missing or older than ``package-lock.json`` (a few seconds with a warm npm cache).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pmkt.chain.dev import dev_key
from p2pmkt.client import SyncClient, connect

pytestmark = pytest.mark.slow

JS_DIR = Path(__file__).resolve().parents[2] / "examples" / "js-client"
NODE = shutil.which("node")
NPM = shutil.which("npm")
ENV = dict(os.environ, PYTHONUNBUFFERED="1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGINT the process group (Ctrl-C), SIGKILL it after 10 s."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def js_client() -> Path:
    """examples/js-client with its dependencies installed (``npm ci`` when needed)."""
    if NODE is None or NPM is None:
        pytest.skip("node and npm are not installed (the JS client needs Node.js 20+ and npm)")
    installed = JS_DIR / "node_modules" / ".package-lock.json"  # written by npm ci
    lock = JS_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        ci = subprocess.run([NPM, "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=JS_DIR,
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert ci.returncode == 0, f"npm ci failed:\n{ci.stdout}\n{ci.stderr}"
    return JS_DIR


@pytest.fixture(scope="module")
def node_addr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``p2pmkt dev`` process; its full multiaddr once it prints it."""
    data = tmp_path_factory.mktemp("js-interop") / "chain"
    proc = subprocess.Popen(
        [sys.executable, "-m", "p2pmkt", "dev", "--dir", str(data),
         "--listen", f"/ip4/127.0.0.1/tcp/{_free_port()}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        env=ENV, start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise AssertionError("dev chain printed no address within 30 s:\n" + "".join(seen)) from None
            assert line is not None, "dev chain exited:\n" + "".join(seen)
            seen.append(line)
            m = re.search(r"wire protocol at (/ip4/\S+/p2p/\S+)", line)
            if m:
                break
        yield m.group(1)
    finally:
        _stop(proc)
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def py_client(node_addr: str) -> Iterator[SyncClient]:
    with connect(node_addr) as client:
        yield client


@pytest.fixture(scope="module")
def demo(js_client: Path, node_addr: str) -> dict[str, Any]:
    """The demo's JSON output (it exits 0 only when every step matched the docs)."""
    assert NODE is not None
    run = subprocess.run([NODE, "demo.mjs", node_addr], cwd=js_client, capture_output=True, text=True,
                         timeout=90, stdin=subprocess.DEVNULL)
    assert run.stdout.strip(), f"demo printed nothing (exit {run.returncode}):\n{run.stderr}"
    result: dict[str, Any] = json.loads(run.stdout)
    assert run.returncode == 0 and result["ok"], (
        f"demo failed (exit {run.returncode}):\n{json.dumps(result, indent=1)}\n{run.stderr}")
    return result


def test_js_encoding_matches_the_documented_worked_examples(demo: dict[str, Any]) -> None:
    assert demo["vectors"] == {"ok": True, "checked": 13, "failures": []}


def test_js_reads_node_info_and_head(demo: dict[str, Any], py_client: SyncClient) -> None:
    info = py_client.info()
    assert demo["node"]["chain"] == info.chain == "p2pmkt-dev"
    assert demo["node"]["peer_id"] == info.peer_id
    assert demo["head"]["height"] <= info.height


def test_a_fresh_js_key_is_refused_for_lack_of_a_role(demo: dict[str, Any]) -> None:
    fresh = demo["fresh_key"]
    assert fresh["account"]["member"] is False and fresh["account"]["roles"] == []
    assert fresh["visit_batch"]["got"]["code"] == -32004  # PERMISSION_DENIED


def test_js_signed_visits_are_committed(demo: dict[str, Any], py_client: SyncClient) -> None:
    terminal = dev_key("terminal").address
    visits = demo["visits"]
    assert visits["key"] == "0x" + terminal.hex()
    assert [t["kind"] for t in visits["txs"]] == ["visit.batch", "visit.pack"]
    for t in visits["txs"]:
        txid = bytes.fromhex(t["txid"])
        status = py_client.tx(txid)
        assert status is not None and status.status == "committed", status
        assert status.height == t["height"]
        block = py_client.block(status.height)
        assert block is not None
        assert block.hash.hex() == next(b["hash"] for b in visits["blocks"] if b["height"] == status.height)
        signed = [stx for stx in block.txs if stx.txid == txid]
        assert len(signed) == 1 and signed[0].sender == terminal
    account = py_client.call("account.get", {"address": terminal})
    assert account["nonce"] == visits["nonce_after"] == visits["nonce_before"] + 2


def test_js_market_update_is_committed(demo: dict[str, Any], py_client: SyncClient) -> None:
    tech = dev_key("acme-tech").address
    market = demo["market"]
    status = py_client.tx(bytes.fromhex(market["txid"]))
    assert status is not None and status.status == "committed", status
    info = py_client.market_info("acme")
    assert info is not None
    assert info["version"] == market["version_after"] == market["base_version"] + 1
    assert info["author"] == tech and info["height"] == status.height
    assert info["campaigns"] == market["campaigns_after"]
    assert market["event"] == {"event": "market", "sub": market["event"]["sub"],
                               "version": info["version"], "merchant": "acme"}


# What demo.mjs sent and the error PROTOCOL.md §4 documents for it.
EXPECTED_ERRORS = {
    "bad_signature_wrong_signer": -32002,     # BAD_SIGNATURE
    "bad_signature_corrupted": -32002,
    "wrong_chain": -32001,                    # INVALID_TX / wrong_chain
    "non_canonical_body": -32001,
    "replay": -32003,                         # BAD_NONCE / nonce_used
    "unknown_kind": -32001,
    "unknown_method": -32601,                 # METHOD_NOT_FOUND
    "unknown_param": -32602,                  # INVALID_PARAMS
    "tx_not_found": -32005,                   # NOT_FOUND
    "parse_error_not_cbor": -32700,           # PARSE_ERROR, id null, stream closed
    "parse_error_not_a_map": -32700,
    "parse_error_non_minimal_prefix": -32700,
    "frame_too_large": -32009,                # FRAME_TOO_LARGE, id null, stream closed
}


def test_bad_js_requests_get_the_documented_errors(demo: dict[str, Any]) -> None:
    checks = demo["checks"]
    for name, code in EXPECTED_ERRORS.items():
        assert checks[name]["ok"], (name, checks[name])
        assert checks[name]["got"]["code"] == code, (name, checks[name])
        if code in (-32700, -32009):
            assert checks[name]["got"]["id"] is None and checks[name]["closed"], (name, checks[name])
    # INVALID_REQUEST (a readable id) is answered with that id; the stream goes on serving.
    assert checks["invalid_request"]["ok"] and checks["invalid_request"]["got"]["error"]["code"] == -32600


def test_the_node_keeps_serving_after_the_js_client(demo: dict[str, Any], py_client: SyncClient) -> None:
    assert demo["checks"]["still_serving"]["ok"]
    info = py_client.info()
    assert info.height >= demo["market"]["status"]["height"]
    # nothing the bad transactions carried was pooled or consumed a nonce
    account = py_client.call("account.get", {"address": dev_key("terminal").address})
    assert account["pending_nonce"] == account["nonce"] == demo["visits"]["nonce_after"]
