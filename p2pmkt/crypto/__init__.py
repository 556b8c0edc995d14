"""p2pmkt.crypto: secp256k1 keys, addresses, domain-separated signatures, key files."""

from p2pmkt.crypto.keyfile import load_key, save_key
from p2pmkt.crypto.keys import (
    PrivateKey,
    PublicKey,
    address_hex,
    address_of,
    parse_address,
    recover_public_key,
)
from p2pmkt.crypto.signing import (
    PURPOSE_BLOCK,
    PURPOSE_TX,
    recover_signer,
    sign,
    signing_digest,
    verify,
)

__all__ = [
    "PURPOSE_BLOCK",
    "PURPOSE_TX",
    "PrivateKey",
    "PublicKey",
    "address_hex",
    "address_of",
    "load_key",
    "parse_address",
    "recover_public_key",
    "recover_signer",
    "save_key",
    "sign",
    "signing_digest",
    "verify",
]
