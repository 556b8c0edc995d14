"""Key files: 0600 on write; clear errors for missing, unreadable, exposed or malformed files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from p2pmkt.crypto.keyfile import load_key, save_key
from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.errors import KeyFileError

KEY = PrivateKey.from_seed("acme-ops")


def test_saved_key_is_0600_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "node.key"
    save_key(path, KEY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == KEY.secret.hex() + "\n"
    assert load_key(path).address == KEY.address


def test_save_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    save_key(path, KEY)
    with pytest.raises(KeyFileError, match=rf"^key file {path} already exists; refusing to overwrite it$"):
        save_key(path, PrivateKey.from_seed("other"))
    save_key(path, PrivateKey.from_seed("other"), overwrite=True)
    assert load_key(path).address == PrivateKey.from_seed("other").address


def test_missing_key_file_says_how_to_make_one(tmp_path: Path) -> None:
    path = tmp_path / "absent.key"
    with pytest.raises(KeyFileError, match=rf"^key file {path} does not exist \(create one with `p2pmkt key new {path}`\)$") as info:
        load_key(path)
    assert info.value.reason == "key_file"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_group_or_world_accessible_key_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "node.key"
    save_key(path, KEY)
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match=rf"^key file {path} is accessible by group or others \(mode {mode:o}\); run `chmod 600 {path}`$"):
        load_key(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of their mode")
def test_unreadable_key_file(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    save_key(path, KEY)
    os.chmod(path, 0o000)
    try:
        with pytest.raises(KeyFileError, match=rf"^key file {path} is not readable by this user$"):
            load_key(path)
    finally:
        os.chmod(path, 0o600)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"^cannot read key file "):
        load_key(tmp_path)


@pytest.mark.parametrize(
    "content",
    ["", "not hex\n", "ab" * 31 + "\n", "ab" * 33 + "\n", "00" * 32 + "\n", "ff" * 32 + "\n"],
)
def test_malformed_key_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "node.key"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match=rf"^key file {path} is malformed: expected 64 hex digits of a secp256k1 secret$"):
        load_key(path)


def test_binary_garbage_key_file(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(b"\xff\xfe\x00garbage")
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match=rf"^cannot read key file {path}: "):
        load_key(path)
