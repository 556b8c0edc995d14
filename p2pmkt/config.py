"""Node configuration: frozen dataclasses loaded from a TOML file, validated in one place.

A node's config file (``p2pmkt testnet init`` writes one per node)::

    name = "node1"
    data_dir = "data"                       # relative paths are relative to this file
    key_file = "node.key"
    genesis = "../genesis.json"
    listen = ["/ip4/127.0.0.1/tcp/7001"]     # a server: "/ip4/0.0.0.0/tcp/7001"
    announce = []                           # addresses peers should dial, when not the listen
                                            # ones: ["/ip4/203.0.113.7/tcp/7001"] behind NAT
    bootstrap = ["/ip4/127.0.0.1/tcp/7002/p2p/16Uiu2…"]
    mdns = false
    metrics = "127.0.0.1:9101"              # "" turns the Prometheus endpoint off
    log_level = "info"

    [raft]
    tick_ms = 50
    election_ticks = 10                     # election timeout is randomized in [10, 20) ticks
    heartbeat_ticks = 2

    [agent]
    rules = "rules-acme.toml"               # merchant-tech nodes: run the mapping-rules agent

    [storage]
    map_size = "4GiB"                       # LMDB map to start with (bytes, or "512MiB", "4GiB")
    max_map_size = "256GiB"                 # the map grows on demand up to this ceiling; a node
                                            # that reaches it stops (exit 2) and says what to raise

    [limits]
    rpc_max_frame = 4194304
    rpc_requests_per_second = 500           # per peer, bursts of twice as many
    rpc_streams_per_peer = 8
    clients_per_ip = 64                     # open connections per IP address of non-members

:func:`load_config` raises :class:`~p2pmkt.errors.ConfigError` naming the key at fault.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from p2pmkt.errors import ConfigError

DEFAULT_LISTEN = ("/ip4/127.0.0.1/tcp/0",)
LOG_LEVELS = ("debug", "info", "warning", "error")

DEFAULT_MAP_SIZE = 4 << 30
"""LMDB map a store starts with: 4 GiB of address space (the file grows as used, sparse)."""
DEFAULT_MAX_MAP_SIZE = 256 << 30
"""Ceiling the map may grow to on demand; a store at its ceiling fails with StorageFull."""
MIN_MAP_SIZE = 64 << 10
"""Smallest map accepted from a config (tests use tiny maps to fill them quickly)."""

_SIZE_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
               "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value: object, where: str) -> int:
    """Bytes from an int or text like ``"512MiB"``/``"4GiB"`` (binary units only).

    Raises:
        ConfigError: naming ``where``.
    """
    if type(value) is int and value > 0:
        return value
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        digits = text.rstrip("bBkKmMgGtTiI")
        unit = text[len(digits):].lower()
        if digits.isdigit() and unit in _SIZE_UNITS and int(digits) > 0:
            return int(digits) * _SIZE_UNITS[unit]
    raise ConfigError(f"{where} must be a positive size in bytes or like \"512MiB\", \"4GiB\"; "
                      f"got {value!r}")


@dataclass(frozen=True, slots=True)
class RaftConfig:
    tick_ms: int = 50
    election_ticks: int = 10
    heartbeat_ticks: int = 2


@dataclass(frozen=True, slots=True)
class AgentConfig:
    rules: Path | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-peer limits of the client wire protocol (docs/PROTOCOL.md §1 and §3), and how many
    connections one IP address may hold."""

    rpc_max_frame: int = 4 * 1024 * 1024
    rpc_requests_per_second: int = 500
    """Requests per second per peer, with bursts of twice as many (chain members' forwarded
    batches are not charged per transaction)."""
    rpc_streams_per_peer: int = 8
    clients_per_ip: int = 64
    """Connections one IP address may hold open when they are not chain members' (clients);
    members are never counted (:mod:`p2pmkt.net.inbound`)."""


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """LMDB map sizing (see :mod:`p2pmkt.storage.mapsize`)."""

    map_size: int = DEFAULT_MAP_SIZE
    max_map_size: int = DEFAULT_MAX_MAP_SIZE


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    data_dir: Path
    key_file: Path
    genesis: Path
    listen: tuple[str, ...] = DEFAULT_LISTEN
    announce: tuple[str, ...] = ()
    bootstrap: tuple[str, ...] = ()
    mdns: bool = False
    metrics: str = ""
    log_level: str = "info"
    raft: RaftConfig = field(default_factory=RaftConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    limits: Limits = field(default_factory=Limits)
    storage: StorageConfig = field(default_factory=StorageConfig)


def _section(obj: dict[str, Any], cls: type[Any], where: str) -> dict[str, Any]:
    known = {f.name for f in fields(cls)}
    unknown = set(obj) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return obj


def _positive_ints(obj: dict[str, Any], where: str) -> None:
    for key, value in obj.items():
        if type(value) is not int or value <= 0:
            raise ConfigError(f"{where}.{key} must be a positive integer, got {value!r}")


def validate_config(cfg: NodeConfig) -> NodeConfig:
    """Check cross-field rules that types alone cannot express.

    Raises:
        ConfigError: naming the key at fault.
    """
    if not cfg.name:
        raise ConfigError("name must not be empty")
    if cfg.log_level not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {list(LOG_LEVELS)}, got {cfg.log_level!r}")
    if cfg.raft.heartbeat_ticks >= cfg.raft.election_ticks:
        raise ConfigError("raft.heartbeat_ticks must be smaller than raft.election_ticks")
    if not cfg.listen:
        raise ConfigError("listen must name at least one multiaddr")
    for key, addrs in (("listen", cfg.listen), ("announce", cfg.announce), ("bootstrap", cfg.bootstrap)):
        for addr in addrs:
            check_multiaddr(addr, key)
    if cfg.metrics and cfg.metrics.rpartition(":")[2].isdigit() is False:
        raise ConfigError(f"metrics must be HOST:PORT or empty, got {cfg.metrics!r}")
    check_storage(cfg.storage)
    return cfg


UNSPECIFIED_HOSTS = {"ip4": "/ip4/0.0.0.0/", "ip6": "/ip6/::/"}
"""family → the prefix of its unspecified ("every interface of this machine") multiaddrs"""


def unspecified_family(addr: str) -> str | None:
    """``"ip4"`` or ``"ip6"`` when ``addr``'s host is 0.0.0.0 or ::, else None."""
    return next((f for f, prefix in UNSPECIFIED_HOSTS.items() if addr.startswith(prefix)), None)


def with_host(addr: str, host: str) -> str:
    """``addr`` (whose host is unspecified) with ``host`` in its place."""
    family = unspecified_family(addr)
    assert family is not None, addr
    return f"/{family}/{host}/{addr[len(UNSPECIFIED_HOSTS[family]):]}"


def check_multiaddr(addr: str, key: str) -> str:
    """Check one address of ``listen``, ``announce`` or ``bootstrap`` (``key``).

    Listen addresses may be unspecified (``/ip4/0.0.0.0``: every interface); the addresses
    other nodes dial (announce, bootstrap) must name a host; bootstrap ones end in
    ``/p2p/<peer id>`` and announce ones do not.

    Raises:
        ConfigError: naming the key and the address.
    """
    import multiaddr  # here: 16 ms, paid only by commands that check a config

    try:
        protocols = [p.name for p in multiaddr.Multiaddr(addr).protocols()]
    except Exception as exc:
        raise ConfigError(f"{key}: {addr!r} is not a multiaddr (like /ip4/127.0.0.1/tcp/7001): {exc}") from None
    if len(protocols) < 2 or protocols[0] not in ("ip4", "ip6", "dns", "dns4", "dns6") or protocols[1] != "tcp":
        raise ConfigError(f"{key}: {addr!r} must be an IP or DNS address with a TCP port, like "
                          "/ip4/10.0.0.5/tcp/7001")
    if key != "listen" and unspecified_family(addr) is not None:
        raise ConfigError(f"{key}: {addr!r} names no host (0.0.0.0 or :: means 'every interface' "
                          "only when listening); give the address other machines reach it at")
    if key == "bootstrap" and protocols[-1] != "p2p":
        raise ConfigError(f"bootstrap: {addr!r} must end in /p2p/<peer id> (p2pmkt key show prints it)")
    if key in ("listen", "announce") and "p2p" in protocols:
        raise ConfigError(f"{key}: {addr!r} must not carry /p2p/ (the node adds its own peer id)")
    return addr


def check_storage(storage: StorageConfig, where: str = "storage") -> StorageConfig:
    """Raises ConfigError unless ``MIN_MAP_SIZE <= map_size <= max_map_size``."""
    if storage.map_size < MIN_MAP_SIZE:
        raise ConfigError(f"{where}.map_size must be at least {MIN_MAP_SIZE} bytes, got {storage.map_size}")
    if storage.max_map_size < storage.map_size:
        raise ConfigError(
            f"{where}.max_map_size ({storage.max_map_size}) must not be below "
            f"{where}.map_size ({storage.map_size})")
    return storage


def config_from_dict(obj: dict[str, Any], base: Path, where: str = "config") -> NodeConfig:
    """Build a :class:`NodeConfig` from parsed TOML; relative paths resolve against ``base``."""
    top = _section(dict(obj), NodeConfig, where)
    for key in ("name", "data_dir", "key_file", "genesis"):
        if not isinstance(top.get(key), str):
            raise ConfigError(f"{where}: {key} must be text")
    raft = _section(top.pop("raft", {}), RaftConfig, f"{where}: [raft]")
    _positive_ints(raft, f"{where}: raft")
    agent = _section(top.pop("agent", {}), AgentConfig, f"{where}: [agent]")
    limits = _section(top.pop("limits", {}), Limits, f"{where}: [limits]")
    _positive_ints(limits, f"{where}: limits")
    storage = _section(top.pop("storage", {}), StorageConfig, f"{where}: [storage]")
    storage = {k: parse_size(v, f"{where}: storage.{k}") for k, v in storage.items()}
    for key in ("listen", "announce", "bootstrap"):
        if key in top and not (
            isinstance(top[key], list) and all(isinstance(a, str) for a in top[key])
        ):
            raise ConfigError(f"{where}: {key} must be a list of multiaddr strings")
    rules = agent.get("rules")
    if rules is not None and not isinstance(rules, str):
        raise ConfigError(f"{where}: agent.rules must be a path")
    cfg = NodeConfig(
        name=top["name"],
        data_dir=(base / top["data_dir"]).resolve(),
        key_file=(base / top["key_file"]).resolve(),
        genesis=(base / top["genesis"]).resolve(),
        listen=tuple(top.get("listen", DEFAULT_LISTEN)),
        announce=tuple(top.get("announce", ())),
        bootstrap=tuple(top.get("bootstrap", ())),
        mdns=bool(top.get("mdns", False)),
        metrics=str(top.get("metrics", "")),
        log_level=str(top.get("log_level", "info")),
        raft=RaftConfig(**raft),
        agent=AgentConfig(rules=(base / rules).resolve() if rules else None),
        limits=Limits(**limits),
        storage=StorageConfig(**storage),
    )
    return validate_config(cfg)


def config_toml(
    *, name: str, genesis: str, listen: list[str], bootstrap: list[str], metrics: str,
    announce: list[str] | None = None, rules: str | None = None, key_file: str = "node.key",
) -> str:
    """The text of a node config file (the module docstring's format) that :func:`load_config`
    reads back; paths relative to the file. What ``p2pmkt testnet init`` and ``p2pmkt node
    init`` write. Strings are written as JSON strings, which TOML reads unchanged."""
    import json

    lines = [
        f"name = {json.dumps(name)}",
        'data_dir = "data"',
        f"key_file = {json.dumps(key_file)}",
        f"genesis = {json.dumps(genesis)}",
        f"listen = {json.dumps(listen)}",
        *([f"announce = {json.dumps(announce)}"] if announce is not None else []),
        f"bootstrap = {json.dumps(bootstrap)}",
        f"metrics = {json.dumps(metrics)}",
        'log_level = "info"',
        "",
        "[raft]",
        "tick_ms = 50",
        "election_ticks = 10",
        "heartbeat_ticks = 2",
    ]
    if rules is not None:
        lines += ["", "[agent]", f"rules = {json.dumps(rules)}"]
    return "\n".join(lines) + "\n"


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate a node config file.

    Raises:
        ConfigError: missing file, bad TOML (with position), or invalid values.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from exc
    try:
        obj = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from exc
    return config_from_dict(obj, p.parent.resolve(), str(p))
