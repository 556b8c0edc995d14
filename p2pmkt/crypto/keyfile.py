"""Key files: one secp256k1 secret as 64 hex digits and a newline, mode 0600.

Loading refuses a file that others can read, like ssh does, because a validator key that
leaked signs blocks for anyone.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from p2pmkt.crypto.keys import PrivateKey
from p2pmkt.errors import KeyFileError


def save_key(path: str | os.PathLike[str], key: PrivateKey, *, overwrite: bool = False) -> None:
    """Write ``key`` to ``path`` with mode 0600 (created that way, never widened).

    Raises:
        KeyFileError: the file exists (unless ``overwrite``) or cannot be written.
    """
    target = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, flags, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"key file {target} already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot write key file {target}: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as fh:
        fh.write(key.secret.hex() + "\n")
    os.chmod(target, 0o600)


def load_key(path: str | os.PathLike[str]) -> PrivateKey:
    """Read a key file written by :func:`save_key`.

    Raises:
        KeyFileError: missing, unreadable, readable by group or others, or malformed; the
            message names the file and the fix.
    """
    target = Path(path)
    try:
        st = target.stat()
        text = target.read_text(encoding="ascii")
    except FileNotFoundError as exc:
        raise KeyFileError(
            f"key file {target} does not exist (create one with `p2pmkt key new {target}`)"
        ) from exc
    except PermissionError as exc:
        raise KeyFileError(f"key file {target} is not readable by this user") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read key file {target}: {exc}") from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {target} is accessible by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):o}); run `chmod 600 {target}`"
        )
    raw = text.strip()
    try:
        secret = bytes.fromhex(raw)
        return PrivateKey(secret)
    except ValueError as exc:
        raise KeyFileError(
            f"key file {target} is malformed: expected 64 hex digits of a secp256k1 secret"
        ) from exc
