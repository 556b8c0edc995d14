"""``p2pmkt genesis new|show`` and ``p2pmkt node init``, run as an operator runs them: the
commands that set up a real multi-machine network (no node process is started here)."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path

import pytest

from p2pmkt.chain.genesis import Genesis, Member, load_genesis
from p2pmkt.config import load_config
from p2pmkt.crypto import address_hex, load_key, save_key
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.crypto.peerid import peer_id_of

from ._procs import run_cli


def ok(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = run_cli(*args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done


def fails(*args: str | Path, cwd: Path) -> str:
    """stderr of a command that must exit 2 (usage or configuration error) cleanly."""
    done = run_cli(*args, cwd=cwd)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stderr


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, PrivateKey]:
    """Key files plat.key, acme.key and term.key in ``tmp_path`` (written in-process to keep
    the tests fast; the first test makes its keys with ``p2pmkt key new``)."""
    out = {name: PrivateKey.generate() for name in ("plat", "acme", "term")}
    for name, key in out.items():
        save_key(tmp_path / f"{name}.key", key)
    return out


@pytest.fixture
def genesis_file(tmp_path: Path, keys: dict[str, PrivateKey]) -> Path:
    """genesis.json of chain acme-net: plat (platform) and acme (merchant-ops/tech:acme)
    validate, term (terminal) does not."""
    roles = {"plat": ("platform",), "acme": ("merchant-ops:acme", "merchant-tech:acme"),
             "term": ("terminal",)}
    members = tuple(Member(name, keys[name].public_key.compressed, r) for name, r in roles.items())
    Genesis("acme-net", 1764028800000, members, ("plat", "acme")).save(tmp_path / "genesis.json")
    return tmp_path / "genesis.json"


# --- genesis new / show ----------------------------------------------------------------------


def test_genesis_new_takes_hex_json_and_key_files_and_show_round_trips(tmp_path: Path) -> None:
    for name in ("plat", "acme", "term"):
        ok("key", "new", f"{name}.key", cwd=tmp_path)
    keys = {name: load_key(tmp_path / f"{name}.key") for name in ("plat", "acme", "term")}
    shown = ok("key", "show", "acme.key", cwd=tmp_path).stdout
    (tmp_path / "acme.json").write_text(shown)
    new = ok("genesis", "new", "net/genesis.json", "--chain-id", "acme-net",
             "--member", "plat", keys["plat"].public_key.compressed.hex(), "platform",
             "--member", "acme", "acme.json", "merchant-ops:acme, merchant-tech:acme",
             "--member", "term", "term.key", "",
             "--genesis-time", "1764028800000", "--param", "block_interval_ms=250",
             cwd=tmp_path)
    printed = re.search(r"genesis hash  ([0-9a-f]{64})\n", new.stdout)
    assert printed is not None, new.stdout
    assert "compare this hash with every other operator" in new.stdout.lower()
    assert "every member: no --validator given" in new.stdout

    path = tmp_path / "net" / "genesis.json"
    assert printed.group(1) == load_genesis(path).hash.hex()
    summary = json.loads(ok("genesis", "show", path, "--json", cwd=tmp_path).stdout)
    assert summary["hash"] == printed.group(1)
    assert summary["chain_id"] == "acme-net"
    assert summary["genesis_time"] == 1764028800000
    assert summary["genesis_time_utc"] == "2025-11-25T00:00:00.000Z"
    assert summary["params"]["block_interval_ms"] == 250
    assert summary["validators"] == ["plat", "acme", "term"]
    assert [(m["name"], m["roles"], m["validator"]) for m in summary["members"]] == [
        ("plat", ["platform"], True),
        ("acme", ["merchant-ops:acme", "merchant-tech:acme"], True),
        ("term", [], True),
    ]
    for m in summary["members"]:
        key = keys[m["name"]]
        assert m["pubkey"] == key.public_key.compressed.hex()
        assert m["address"] == address_hex(key.address)
        assert m["peer_id"] == peer_id_of(key.public_key.compressed)


def test_genesis_show_prints_a_table(genesis_file: Path, keys: dict[str, PrivateKey]) -> None:
    out = ok("genesis", "show", genesis_file, cwd=genesis_file.parent).stdout
    assert f"genesis hash  {load_genesis(genesis_file).hash.hex()}" in out
    assert "chain id      acme-net" in out
    # Addresses and peer ids are printed whole, ready to copy.
    assert peer_id_of(keys["term"].public_key.compressed) in out
    assert address_hex(keys["acme"].address) in out
    assert re.search(r"term .* terminal +│ no ", out), out
    assert "block_interval_ms" in out


def test_genesis_show_of_a_bad_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"chain_id": "x"}\n')
    err = fails("genesis", "show", "bad.json", cwd=tmp_path)
    assert err == "error: bad.json: missing keys ['genesis_time', 'members', 'validators']\n"
    err = fails("genesis", "show", "missing.json", cwd=tmp_path)
    assert err == "error: cannot read genesis file missing.json: No such file or directory\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--member", "b", "term.key", "boss"], "members[1] (b): unknown role 'boss'"),
        (["--member", "b", "02" + "ab" * 31, ""], "--member b '02abab"),
        (["--member", "b", "not-a-key", ""], "--member b 'not-a-key' is neither hex digits nor an existing file"),
        (["--member", "a", "term.key", ""], "members[1]: name must be unique non-empty text, got 'a'"),
        (["--validator", "zed"], "validator 'zed' is not a member name"),
        (["--param", "block_ms=5"], "params has unknown keys ['block_ms']; known: ['block_interval_ms',"),
        (["--param", "block_interval_ms=fast"], "params.block_interval_ms must be a positive integer"),
    ],
    ids=["unknown-role", "bad-pubkey", "neither-key-nor-file", "duplicate-name",
         "validator-not-member", "unknown-param", "param-not-int"],
)
def test_genesis_new_refuses_mistakes(
    tmp_path: Path, keys: dict[str, PrivateKey], extra: list[str], message: str
) -> None:
    err = fails("genesis", "new", "genesis.json", "--chain-id", "acme-net",
                "--member", "a", "plat.key", "platform", *extra, cwd=tmp_path)
    assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "genesis.json").exists()


def test_genesis_new_keeps_an_existing_file_without_force(genesis_file: Path) -> None:
    before = genesis_file.read_text()
    args = ["genesis", "new", "genesis.json", "--chain-id", "other", "--member", "a", "plat.key", ""]
    err = fails(*args, cwd=genesis_file.parent)
    assert err == "error: genesis.json already exists; pass --force to replace it\n"
    assert genesis_file.read_text() == before
    ok(*args, "--force", cwd=genesis_file.parent)
    assert load_genesis(genesis_file).chain_id == "other"


# --- node init -------------------------------------------------------------------------------


def test_node_init_writes_a_directory_node_run_accepts(
    genesis_file: Path, keys: dict[str, PrivateKey]
) -> None:
    tmp = genesis_file.parent
    boot = f"/ip4/198.51.100.2/tcp/7100/p2p/{peer_id_of(keys['plat'].public_key.compressed)}"
    done = ok("node", "init", "acme-node", "--genesis", "genesis.json", "--name", "acme1",
              "--key", "acme.key", "--listen", "/ip4/0.0.0.0/tcp/7300",
              "--announce", "/ip4/203.0.113.7/tcp/7300", "--bootstrap", boot,
              "--metrics", "0.0.0.0:9300", cwd=tmp)
    out = done.stdout
    peer_id = peer_id_of(keys["acme"].public_key.compressed)
    assert f"peer id  {peer_id}\n" in out
    assert f"address  {address_hex(keys['acme'].address)}\n" in out
    assert ("roles merchant-ops:acme, merchant-tech:acme; a validator (at genesis; `p2pmkt member show "
            "ADDRESS` gives the chain's current view)") in out
    assert f"  /ip4/203.0.113.7/tcp/7300/p2p/{peer_id}\n" in out
    assert "p2pmkt node run --config acme-node/config.toml" in out
    assert done.stderr == ""

    node_dir = tmp / "acme-node"
    config = load_config(node_dir / "config.toml")
    assert config.name == "acme1"
    assert config.listen == ("/ip4/0.0.0.0/tcp/7300",)
    assert config.announce == ("/ip4/203.0.113.7/tcp/7300",)
    assert config.bootstrap == (boot,)
    assert config.metrics == "0.0.0.0:9300"
    assert config.genesis == (node_dir / "genesis.json").resolve()
    assert config.key_file == (node_dir / "node.key").resolve()
    assert config.data_dir == (node_dir / "data").resolve()
    assert load_genesis(config.genesis).hash == load_genesis(genesis_file).hash
    assert stat.S_IMODE(config.key_file.stat().st_mode) == 0o600
    assert load_key(config.key_file).secret == keys["acme"].secret


def test_node_init_defaults_a_new_key_and_placeholder_addresses(genesis_file: Path) -> None:
    tmp = genesis_file.parent
    done = ok("node", "init", "obs", "--genesis", "genesis.json", "--name", "obs", cwd=tmp)
    key = load_key(tmp / "obs" / "node.key")
    peer_id = peer_id_of(key.public_key.compressed)
    assert f"peer id  {peer_id}\n" in done.stdout
    # Said as what genesis holds: a platform key may have added the key since.
    assert ("note: this key is not a member in genesis acme-net: unless a platform key has added it since "
            "(check: `p2pmkt member show ADDRESS --connect ...`), the other nodes take no part with it "
            "until one does") in done.stdout
    assert f"  /ip4/<this machine's IP>/tcp/7100/p2p/{peer_id}\n" in done.stdout
    assert "Replace <this machine's IP> with the address" in done.stdout
    assert "warning: no bootstrap: this node waits for others to dial it" in done.stderr
    config = load_config(tmp / "obs" / "config.toml")
    assert config.listen == ("/ip4/0.0.0.0/tcp/7100",)
    assert config.announce == config.bootstrap == ()
    assert config.metrics == "127.0.0.1:9100"
    assert (config.raft.tick_ms, config.raft.election_ticks, config.raft.heartbeat_ticks) == (50, 10, 2)

    # --force rewrites the config but keeps the node's identity.
    again = ok("node", "init", "obs", "--genesis", "genesis.json", "--name", "obs2", "--force", cwd=tmp)
    assert f"peer id  {peer_id}\n" in again.stdout
    assert load_config(tmp / "obs" / "config.toml").name == "obs2"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--bootstrap", "/ip4/198.51.100.2/tcp/7100"],
         "error: bootstrap: '/ip4/198.51.100.2/tcp/7100' must end in /p2p/<peer id>"),
        (["--announce", "/ip4/0.0.0.0/tcp/7100"],
         "error: announce: '/ip4/0.0.0.0/tcp/7100' names no host"),
    ],
    ids=["bootstrap-without-p2p", "announce-unspecified"],
)
def test_node_init_refuses_a_bad_address_before_writing(
    genesis_file: Path, flags: list[str], message: str
) -> None:
    tmp = genesis_file.parent
    err = fails("node", "init", "n1", "--genesis", "genesis.json", "--name", "n1", *flags, cwd=tmp)
    assert err.startswith(message), err
    assert not (tmp / "n1").exists()


def test_node_init_keeps_an_existing_config_without_force(genesis_file: Path) -> None:
    tmp = genesis_file.parent
    (tmp / "n1").mkdir()
    (tmp / "n1" / "config.toml").write_text("# mine\n")
    err = fails("node", "init", "n1", "--genesis", "genesis.json", "--name", "n1", cwd=tmp)
    assert err == "error: n1 already holds a node config (n1/config.toml); pass --force to replace it\n"
    assert (tmp / "n1" / "config.toml").read_text() == "# mine\n"
    assert sorted(p.name for p in (tmp / "n1").iterdir()) == ["config.toml"]


def test_node_init_with_rules_copies_and_points_at_them(genesis_file: Path) -> None:
    tmp = genesis_file.parent
    (tmp / "rules-acme.toml").write_text(
        'version = 1\nmerchant = "acme"\n\n[[rule]]\nname = "r"\nindicator = "conversion"\n'
        'below = 0.02\nactions = [{ raise_bid_pct = 10, max_bid = 500 }]\n')
    bad = fails("node", "init", "n1", "--genesis", "genesis.json", "--name", "n1", "--key", "acme.key",
                "--rules", "genesis.json", cwd=tmp)
    assert bad.startswith("error: genesis.json line 1: not valid TOML"), bad
    assert not (tmp / "n1").exists()
    ok("node", "init", "n1", "--genesis", "genesis.json", "--name", "n1", "--key", "acme.key",
       "--rules", "rules-acme.toml", cwd=tmp)
    config = load_config(tmp / "n1" / "config.toml")
    assert config.agent.rules == (tmp / "n1" / "rules-acme.toml").resolve()
    assert config.agent.rules.read_text() == (tmp / "rules-acme.toml").read_text()


def test_node_init_refuses_an_open_key_file(genesis_file: Path, keys: dict[str, PrivateKey]) -> None:
    tmp = genesis_file.parent
    save_key(tmp / "open.key", keys["plat"])
    (tmp / "open.key").chmod(0o644)
    err = fails("node", "init", "n1", "--genesis", "genesis.json", "--name", "n1", "--key", "open.key",
                cwd=tmp)
    assert err.startswith("error: key file open.key is accessible by group or others"), err
    assert not (tmp / "n1").exists()


# --- help ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [("genesis", "new"), ("genesis", "show"), ("node", "init")])
def test_help_shows_an_example(path: tuple[str, str]) -> None:
    done = run_cli(*path, "--help")
    assert done.returncode == 0, done.stderr
    assert f"example:\n  p2pmkt {' '.join(path)} " in done.stdout
