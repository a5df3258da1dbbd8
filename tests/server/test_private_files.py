"""The server's files on disk: owner-only from creation, too-open ones tightened or reported."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from labchat.server.keys import load_or_create_server_key
from labchat.server.private_files import make_private_dir, tighten_file
from labchat.server.store import Store, StoredMessage

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_database_wal_shm_and_key_are_owner_only_in_an_owner_only_directory(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask, which would give 0644 files and 0755 directories
    try:
        data = tmp_path / "share" / "labchat"
        store = Store(data / "server.db", scrypt_n=2**10)
        store.create_account("ana", "secret")
        store.append_messages([StoredMessage("lobby", 1, 1, "ana", "hello", 0, 1)], ["ana"])
        load_or_create_server_key(data / "server.key")
        names = sorted(p.name for p in data.iterdir())
        assert names == ["server.db", "server.db-shm", "server.db-wal", "server.key"]
        assert {p.name: mode(p) for p in data.iterdir()} == dict.fromkeys(names, 0o600)
        assert mode(data) == 0o700
        assert store.warnings == []
        store.close()
    finally:
        os.umask(old_umask)


def test_existing_too_open_database_files_are_tightened_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    Store(path, scrypt_n=2**10).close()
    os.chmod(path, 0o644)
    (tmp_path / "server.db-wal").write_bytes(b"")
    os.chmod(tmp_path / "server.db-wal", 0o666)
    os.chmod(tmp_path, 0o755)
    store = Store(path, scrypt_n=2**10)
    assert mode(path) == 0o600 and mode(tmp_path / "server.db-wal") == 0o600
    text = "\n".join(store.warnings)
    assert f"{path} was readable by other users (mode 644); made it 600" in text
    assert "server.db-wal was readable by other users (mode 666)" in text
    assert f"run 'chmod 700 {tmp_path}'" in text  # the directory: reported, not changed
    assert mode(tmp_path) == 0o755
    store.close()
    os.chmod(tmp_path, 0o700)
    assert Store(path, scrypt_n=2**10).warnings == []


def test_private_dir_and_file_helpers(tmp_path: Path) -> None:
    fresh = tmp_path / "a" / "b"
    assert make_private_dir(fresh) == [] and mode(fresh) == 0o700
    assert tighten_file(tmp_path / "absent") is None
    ok = tmp_path / "ok"
    ok.write_bytes(b"x")
    os.chmod(ok, 0o600)
    assert tighten_file(ok) is None
    os.chmod(ok, 0o640)
    line = tighten_file(ok)
    assert line is not None and "mode 640" in line and mode(ok) == 0o600


def test_a_shared_sticky_directory_is_not_told_to_chmod(tmp_path: Path) -> None:
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (line,) = make_private_dir(shared)
    assert "shared with other users" in line and "chmod" not in line
