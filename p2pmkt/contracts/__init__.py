"""p2pmkt.contracts: the sandboxed WebAssembly indicator engine (issue 3).

Deterministic CPU only: imports wasmtime and nothing with side effects beyond the compiled-module
cache directory. ``WasmRuntime`` implements :class:`p2pmkt.chain.contract_api.ContractRuntime`;
``p2pmkt.node`` wires the two. The ABI lives in :mod:`p2pmkt.contracts.abi` and
docs/CONTRACTS.md; built-in indicators in :mod:`p2pmkt.contracts.builtin`.
"""

from p2pmkt.chain.contract_api import EvalResult, pack_visit, pack_visits
from p2pmkt.contracts.runtime import (
    RuntimeConfig,
    RuntimeStatistics,
    WasmRuntime,
    make_engine,
    validate_config,
)

__all__ = [
    "EvalResult",
    "RuntimeConfig",
    "RuntimeStatistics",
    "WasmRuntime",
    "make_engine",
    "pack_visit",
    "pack_visits",
    "validate_config",
]
