"""Keys, addresses and domain-separated signatures."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmkt.crypto.keys import (
    PrivateKey,
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
from p2pmkt.errors import InvalidSignature

KEY = PrivateKey.from_seed("platform")
OTHER = PrivateKey.from_seed("terminal")


def test_dev_keys_are_deterministic_and_documented() -> None:
    assert PrivateKey.from_seed("platform").secret == hashlib.sha256(b"p2pmkt dev key\x00platform").digest()
    assert PrivateKey.from_seed("platform").address == KEY.address != OTHER.address


def test_address_is_sha256_of_the_compressed_key() -> None:
    pub = KEY.public_key.compressed
    assert len(pub) == 33 and pub[0] in (2, 3)
    assert KEY.address == hashlib.sha256(pub).digest()[:20] == address_of(pub)
    assert parse_address(address_hex(KEY.address)) == KEY.address
    assert parse_address(KEY.address.hex()) == KEY.address


@pytest.mark.parametrize("text", ["", "0x12", "0x" + "zz" * 20, "0x" + "00" * 21])
def test_parse_address_says_what_it_expects(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected 0x followed by 40 hex digits\)$"):
        parse_address(text)


def test_repr_never_shows_the_secret() -> None:
    assert KEY.secret.hex() not in repr(KEY)
    assert repr(KEY) == f"PrivateKey(address={address_hex(KEY.address)})"


@pytest.mark.parametrize("secret", [b"\x00" * 32, b"\xff" * 32, b"\x01" * 31])
def test_invalid_secrets_are_refused(secret: bytes) -> None:
    with pytest.raises(ValueError):
        PrivateKey(secret)


@settings(max_examples=50)
@given(st.binary(max_size=200))
def test_sign_then_verify(message: bytes) -> None:
    sig = sign(KEY, "chain-a", PURPOSE_TX, message)
    verify("chain-a", PURPOSE_TX, message, sig, KEY.address)
    assert recover_signer("chain-a", PURPOSE_TX, message, sig) == KEY.address


@settings(max_examples=50)
@given(st.binary(max_size=100))
def test_a_signature_is_bound_to_its_chain_purpose_message_and_key(message: bytes) -> None:
    sig = sign(KEY, "chain-a", PURPOSE_TX, message)
    for chain, purpose, msg, signer in [
        ("chain-b", PURPOSE_TX, message, KEY.address),
        ("chain-a", PURPOSE_BLOCK, message, KEY.address),
        ("chain-a", PURPOSE_TX, message + b"\x00", KEY.address),
        ("chain-a", PURPOSE_TX, message, OTHER.address),
    ]:
        with pytest.raises(InvalidSignature, match=r"^signature does not match sender 0x[0-9a-f]{40} for chain "):
            verify(chain, purpose, msg, sig, signer)


def test_domain_encoding_is_unambiguous() -> None:
    """Moving bytes between chain id, purpose and message changes the digest."""
    assert signing_digest("ab", "tx", b"m") != signing_digest("a", "btx", b"m")
    assert signing_digest("a", "tx", b"m") != signing_digest("a", "t", b"x\x00m")


@pytest.mark.parametrize("sig", [b"", b"\x00" * 64, b"\x00" * 65, b"\xff" * 65, b"\x01" * 66])
def test_malformed_signatures_are_typed_errors(sig: bytes) -> None:
    with pytest.raises(InvalidSignature):
        verify("chain-a", PURPOSE_TX, b"m", sig, KEY.address)


@settings(max_examples=100)
@given(st.binary(min_size=65, max_size=65), st.binary(min_size=32, max_size=32))
def test_random_signatures_never_crash(sig: bytes, digest: bytes) -> None:
    try:
        recover_public_key(sig, digest)
    except InvalidSignature:
        pass
