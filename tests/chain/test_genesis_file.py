"""The genesis file's member keys: a key that is not a point of secp256k1 is refused at load
(such a member could never sign), naming the member; a real key loads."""

from __future__ import annotations

import pytest

from p2pmkt.chain.dev import dev_genesis
from p2pmkt.chain.genesis import genesis_from_json
from p2pmkt.errors import ConfigError


def _with_first_pubkey(hex_key: str) -> dict:
    obj = dev_genesis().to_json()
    obj["members"][0]["pubkey"] = hex_key
    return obj


def test_a_dev_genesis_round_trips() -> None:
    g = dev_genesis()
    assert genesis_from_json(g.to_json()).hash == g.hash


@pytest.mark.parametrize("hex_key", ["02" + "00" * 32, "03" + "ff" * 32, "04" + "ab" * 32, "02" + "ab" * 31])
def test_a_member_key_off_the_curve_or_misshapen_is_refused(hex_key: str) -> None:
    with pytest.raises(ConfigError, match=r"members\[0\] \(validator\): pubkey must be 66 hex digits of a "
                                          r"compressed secp256k1 public key"):
        genesis_from_json(_with_first_pubkey(hex_key))
