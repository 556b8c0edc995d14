"""The one error tree of p2pmkt.

Every error the project raises on purpose derives from :class:`P2pmktError`. Each class has a
stable ``reason`` slug: metrics count rejections by it, the RPC layer maps it to an error code,
and users can grep for it. Messages say what was wrong *and* what to do about it.

::

    P2pmktError
    ├── LocalError                 our side: misuse, bad configuration, a bug
    │   ├── ConfigError            a config, genesis or rules file is wrong (says where)
    │   ├── KeyFileError           a key file is missing, unreadable or malformed
    │   └── StorageError           LMDB failed (StorageFull when the map is full)
    │       └── StorageFull
    ├── RemoteError                someone else's input is bad; we reject it and carry on
    │   ├── DecodeError            malformed, oversized, too deep or non-canonical CBOR
    │   ├── FramingError           bad length prefix or oversized frame
    │   ├── InvalidSignature       signature does not verify for this chain and purpose
    │   ├── InvalidTransaction     a transaction is not acceptable (reason in the message)
    │   │   ├── PermissionDenied   signer lacks the role or merchant scope
    │   │   ├── NonceError         replayed or skipped nonce
    │   │   └── UnknownKind        transaction kind not known to this chain
    │   ├── InvalidBlock           a block does not extend the head or fails its checks
    │   └── ContractRejected       a contract module refused at deploy time
    └── Busy                       back-pressure: retry later (e.g. MempoolFull)
        └── MempoolFull

Pure cores raise these; I/O adapters map foreign exceptions (lmdb, wasmtime, libp2p) into
them with ``raise X from exc`` so that callers only ever catch p2pmkt errors.
"""

from __future__ import annotations


class P2pmktError(Exception):
    """Root of every error p2pmkt raises on purpose."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class LocalError(P2pmktError):
    """Our side is wrong: misuse of an API, a bad local file, or a bug."""

    reason = "local"


class ConfigError(LocalError):
    reason = "config"


class KeyFileError(LocalError):
    reason = "key_file"


class StorageError(LocalError):
    reason = "storage"


class StorageFull(StorageError):
    reason = "storage_full"


class RemoteError(P2pmktError):
    """Input from outside (a peer, a client, a file) is bad; reject it and carry on."""

    reason = "remote"


class DecodeError(RemoteError):
    reason = "decode"


class FramingError(RemoteError):
    reason = "framing"


class InvalidSignature(RemoteError):
    reason = "bad_signature"


class InvalidTransaction(RemoteError):
    reason = "invalid_tx"


class PermissionDenied(InvalidTransaction):
    reason = "permission_denied"


class NonceError(InvalidTransaction):
    reason = "bad_nonce"


class UnknownKind(InvalidTransaction):
    reason = "unknown_kind"


class InvalidBlock(RemoteError):
    reason = "invalid_block"


class ContractRejected(RemoteError):
    reason = "contract_rejected"


class Busy(P2pmktError):
    """Back-pressure: the request was fine but cannot be taken now; retry later."""

    reason = "busy"


class MempoolFull(Busy):
    reason = "mempool_full"


__all__ = [
    "Busy",
    "ConfigError",
    "ContractRejected",
    "DecodeError",
    "FramingError",
    "InvalidBlock",
    "InvalidSignature",
    "InvalidTransaction",
    "KeyFileError",
    "LocalError",
    "MempoolFull",
    "NonceError",
    "P2pmktError",
    "PermissionDenied",
    "RemoteError",
    "StorageError",
    "StorageFull",
    "UnknownKind",
    "group_leaves",
]


def group_leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, depth first; ``[exc]`` for a plain one.

    Trio nurseries wrap what escapes them in groups; callers use this to see the errors.
    """
    if not isinstance(exc, BaseExceptionGroup):
        return [exc]
    return [leaf for e in exc.exceptions for leaf in group_leaves(e)]
