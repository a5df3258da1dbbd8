"""The server's long-term X25519 key: one raw 32-byte file, readable by its owner only.

Why a file and not a database row: the key is the server's identity (clients pin its
fingerprint), so it must survive restarts, be easy to back up or rotate on its own (delete it and
restart), and never be readable by other local users. OpenSSH refuses a private key file that
others can read; we do the same rather than silently using a key that may already be copied.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..i18n import _

#: Raw X25519 private key length.
SERVER_KEY_BYTES = 32
#: Owner read/write only.
SERVER_KEY_FILE_MODE = 0o600


class KeyFileError(Exception):
    """The key file exists but cannot be used: unreadable, the wrong size, or open to others."""


def public_key_of(private: bytes) -> bytes:
    """The raw 32-byte X25519 public key for a raw private key."""
    if len(private) != SERVER_KEY_BYTES:
        wrong = _("an X25519 private key is {size} bytes, not {actual}")
        raise KeyFileError(wrong.format(size=SERVER_KEY_BYTES, actual=len(private)))
    key = X25519PrivateKey.from_private_bytes(private)
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _check_permissions(path: Path) -> None:
    if os.name == "nt":  # POSIX modes mean little on Windows; its ACLs are out of scope
        return
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise KeyFileError(_("{path} is not a regular file").format(path=path))
    if mode & 0o077:
        raise KeyFileError(
            _(
                "{path} is readable by other users (mode {mode}); "
                "run 'chmod 600 {path}' if the key was never exposed, else delete it to rotate"
            ).format(path=path, mode=f"{stat.S_IMODE(mode):o}")
        )


def _load(path: Path) -> bytes:
    try:
        _check_permissions(path)
        with path.open("rb") as handle:
            private = handle.read(SERVER_KEY_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(
            _("cannot read server key {path}: {reason}").format(path=path, reason=exc.strerror or exc)
        ) from exc
    if len(private) != SERVER_KEY_BYTES:
        raise KeyFileError(
            _(
                "{path} is not a server key (expected {size} bytes); move it away to generate a new key"
            ).format(path=path, size=SERVER_KEY_BYTES)
        )
    return private


def _create(path: Path, rng: Callable[[int], bytes]) -> bytes:
    private = rng(SERVER_KEY_BYTES)
    # O_EXCL: never overwrite a key another process wrote meanwhile; the mode applies at creation,
    # so the secret is never on disk with wider permissions, even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SERVER_KEY_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(private)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return private


def load_or_create_server_key(path: Path, rng: Callable[[int], bytes] = os.urandom) -> bytes:
    """Return the raw private key stored at `path`, creating it (and its directory) if absent.

    Raises KeyFileError if the file exists but is unusable: a server must not quietly replace its
    identity, since every client would then see a key-change warning.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # as the database's (private_files.py)
        if not path.exists():
            try:
                return _create(path, rng)
            except FileExistsError:
                pass  # created concurrently: load what the other process wrote
    except OSError as exc:
        raise KeyFileError(
            _("cannot create server key {path}: {reason}").format(path=path, reason=exc.strerror or exc)
        ) from exc
    return _load(path)
