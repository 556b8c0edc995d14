"""Reading the public key or the account address an operator names on the command line.

An operator names a member by what they have at hand: the hex a colleague sent
(``p2pmkt key show`` prints it), that command's JSON output saved to a file, or a key file
of their own. Both ``p2pmkt member`` and ``p2pmkt genesis new`` take all three, with the
same messages.
"""

from __future__ import annotations

import json
from pathlib import Path

from p2pmkt.errors import ConfigError

KEY_SOURCES = "a key file or a JSON file from `p2pmkt key show KEY > FILE`"


def read_pubkey(source: str, what: str) -> bytes:
    """The 33-byte compressed public key ``source`` names: 66 hex digits (``0x`` optional),
    the ``pubkey`` of a ``p2pmkt key show`` JSON file, or the public key of a key file.

    ``what`` names the argument in messages (e.g. ``"PUBKEY"``).

    Raises:
        ConfigError: not hex of a compressed secp256k1 point, nor a readable file of either
            kind; the message says which forms are accepted.
        KeyFileError: a key file that :func:`p2pmkt.crypto.load_key` refuses.
    """
    path = Path(source)
    if path.is_file():
        return _file_pubkey(path, what)
    return _pubkey_of_hex(source, f"{what} {source!r}", or_file=True)


def read_address(source: str, what: str = "ADDRESS") -> bytes:
    """The 20-byte account address ``source`` names: ``0x`` + 40 hex digits, or the address
    of the key in a key file or a ``p2pmkt key show`` JSON file.

    Raises:
        ConfigError: neither form; the message says which forms are accepted.
        KeyFileError: a key file that :func:`p2pmkt.crypto.load_key` refuses.
    """
    from p2pmkt.crypto import address_of, parse_address

    path = Path(source)
    if path.is_file():
        return bytes(address_of(_file_pubkey(path, what)))
    try:
        return bytes(parse_address(source))
    except ValueError:
        raise ConfigError(
            f"{what} {source!r} is neither an account address (0x followed by 40 hex digits, as "
            f"`p2pmkt key show` prints under \"address\") nor an existing file ({KEY_SOURCES})"
        ) from None


def _file_pubkey(path: Path, what: str) -> bytes:
    """The public key in a ``p2pmkt key show`` JSON file (it starts with ``{``) or a key file."""
    from p2pmkt.crypto import load_key

    try:
        text = path.read_text(encoding="utf-8").lstrip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc}") from exc
    if not text.startswith("{"):
        return load_key(path).public_key.compressed
    try:
        shown = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what}: {path}: invalid JSON: {exc.msg}") from exc
    hex_key = shown.get("pubkey") if isinstance(shown, dict) else None
    if not isinstance(hex_key, str):
        raise ConfigError(f"{what}: {path} has no \"pubkey\" (write it with "
                          f"`p2pmkt key show KEY > {path}`)")
    return _pubkey_of_hex(hex_key, f"{what}: the \"pubkey\" of {path}")


def _pubkey_of_hex(text: str, subject: str, *, or_file: bool = False) -> bytes:
    """``text`` as a compressed secp256k1 public key; ``subject`` names it in the message."""
    from p2pmkt.crypto.keys import is_public_key

    digits = text.strip().removeprefix("0x")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        problem = "is neither hex digits nor an existing file" if or_file else "is not hex digits"
    else:
        if len(raw) != 33:
            problem = f"has {len(digits)} hex digits, not 66"
        elif raw[0] not in (2, 3):
            problem = f"starts with {digits[:2]}, not 02 or 03 (give the compressed form)"
        elif is_public_key(raw):
            return raw
        else:  # nobody could ever sign as this member
            problem = "is not a point of secp256k1"
    raise ConfigError(
        f"{subject} {problem}: a public key is 66 hex digits starting 02 or 03 (as `p2pmkt key "
        f"show` prints under \"pubkey\"), or give {KEY_SOURCES}"
    )
