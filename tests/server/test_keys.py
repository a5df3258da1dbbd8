"""The server key file: created once with mode 0600, reloaded unchanged, refused when unusable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from labchat.protocol.noise import KeyPair
from labchat.server.keys import KeyFileError, load_or_create_server_key, public_key_of

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")


def test_creates_directory_and_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "server.key"
    key = load_or_create_server_key(path)
    assert len(key) == 32 and path.read_bytes() == key
    if os.name != "nt":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_reload_returns_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "server.key"
    first = load_or_create_server_key(path, rng=lambda n: bytes([5]) * n)
    assert first == bytes([5]) * 32
    assert load_or_create_server_key(path) == first


def test_public_key_matches_x25519(tmp_path: Path) -> None:
    key = load_or_create_server_key(tmp_path / "server.key")
    assert public_key_of(key) == KeyPair.from_private(key).public
    with pytest.raises(KeyFileError):
        public_key_of(b"short")


@pytest.mark.parametrize("content", [b"", b"x" * 31, b"x" * 33, b"-----BEGIN PRIVATE KEY-----\n"])
def test_wrong_size_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "server.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a server key"):
        load_or_create_server_key(path)
    assert path.read_bytes() == content  # never silently replaced


@posix_only
def test_group_readable_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "server.key"
    load_or_create_server_key(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_server_key(path)


@posix_only
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_unreadable_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "server.key"
    load_or_create_server_key(path)
    path.chmod(0o000)
    try:
        with pytest.raises(KeyFileError, match="cannot read"):
            load_or_create_server_key(path)
    finally:
        path.chmod(0o600)


def test_a_directory_in_the_way_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "server.key"
    path.mkdir()
    with pytest.raises(KeyFileError):
        load_or_create_server_key(path)
