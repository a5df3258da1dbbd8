"""The SQLite store: accounts, scrypt, history, idempotent ids, schema versions, bad files."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from labchat.server.store import SCHEMA_VERSION, Store, StoredMessage, StoreError


def make(tmp_path: Path) -> Store:
    return Store(tmp_path / "s.db", scrypt_n=2**10)


def test_accounts(tmp_path: Path) -> None:
    store = make(tmp_path)
    store.create_account("Alice", "pw1234")
    assert store.get_account("ALICE") is not None and store.get_account("alice").name == "Alice"  # type: ignore[union-attr]
    assert store.check_password("alice", "pw1234")
    assert not store.check_password("alice", "nope")
    assert not store.check_password("nobody", "pw1234")
    with pytest.raises(StoreError, match="exists already"):
        store.create_account("ALICE", "other")
    assert store.set_password("alice", "new-one")
    assert store.check_password("alice", "new-one")
    assert [a.name for a in store.list_accounts()] == ["Alice"]
    assert store.remove_account("alice") and store.get_account("alice") is None


def test_passwords_are_only_stored_as_salted_hashes(tmp_path: Path) -> None:
    store = make(tmp_path)
    store.create_account("a", "same password")
    store.create_account("b", "same password")
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("s.db"))
    assert b"same password" not in raw
    db = sqlite3.connect(tmp_path / "s.db")
    hashes = [row[0] for row in db.execute("SELECT hash FROM accounts")]
    assert len(set(hashes)) == 2  # salted: equal passwords, different hashes


def test_messages_and_ids(tmp_path: Path) -> None:
    store = make(tmp_path)
    msgs = [StoredMessage("lobby", i, 1000 + i, "alice", f"m{i}", 0, 2**64 - i) for i in range(1, 6)]
    store.append_messages(msgs, ["alice"] * 5)
    assert store.last_seq("lobby") == 5
    assert [m.text for m in store.last_messages("lobby", 2)] == ["m4", "m5"]
    assert [m.seq for m in store.messages_after("lobby", 2, 10)] == [3, 4, 5]
    found = store.find_message("Alice", 2**64 - 3)
    assert found is not None and found.seq == 3 and found.msg_id == 2**64 - 3
    assert store.find_message("bob", 2**64 - 3) is None


def test_older_schema_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE accounts (key TEXT PRIMARY KEY, name TEXT NOT NULL, salt BLOB NOT NULL,
            hash BLOB NOT NULL, scrypt_n INTEGER NOT NULL, scrypt_r INTEGER NOT NULL,
            scrypt_p INTEGER NOT NULL, created_ms INTEGER NOT NULL);
        CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, ts_ms INTEGER NOT NULL,
            user TEXT NOT NULL, text TEXT NOT NULL, flags INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (room, seq));
        INSERT INTO messages VALUES ('lobby', 1, 5, 'alice', 'from version 1', 0);
        PRAGMA user_version = 1;
        """
    )
    db.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION
    assert [m.text for m in store.last_messages("lobby", 10)] == ["from version 1"]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this labchat"):
        Store(path)


@pytest.mark.parametrize("content", [b"not a database at all" * 50, b"SQLite format 3\x00" + b"\xff" * 2000])
def test_corrupt_file_is_one_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.db"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="cannot open database"):
        Store(path)


def _batch(start: int, count: int = 50) -> list[StoredMessage]:
    return [StoredMessage("lobby", i, 1000 + i, "alice", "x" * 200, 0, i)
            for i in range(start, start + count)]


def test_checkpoints_run_on_another_thread_while_commits_go_on(tmp_path: Path) -> None:
    store = make(tmp_path)
    store.checkpoint_in_background()
    store.append_messages(_batch(1), ["alice"] * 50)
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(store.checkpoint)
        store.append_messages(_batch(51), ["alice"] * 50)  # the writer does not wait for it
        running.result(timeout=10)
        log, copied = pool.submit(store.checkpoint).result(timeout=10)
    assert log > 0 and copied == log  # everything committed is now in the database file
    assert store.last_seq("lobby") == 100
    store.close()
    assert [m.seq for m in Store(tmp_path / "s.db").messages_after("lobby", 98, 10)] == [99, 100]


def test_checkpointed_wal_is_reused_instead_of_growing(tmp_path: Path) -> None:
    store = make(tmp_path)
    store.checkpoint_in_background()
    wal = tmp_path / "s.db-wal"
    sizes = []
    for cycle in range(10):
        store.append_messages(_batch(1 + cycle * 50), ["alice"] * 50)
        store.checkpoint()
        sizes.append(wal.stat().st_size)
    assert max(sizes) == sizes[0] > 0  # each commit after a full checkpoint starts the WAL over


def test_checkpoint_of_a_memory_database_is_a_no_op() -> None:
    store = Store(":memory:", scrypt_n=2**10)
    assert store.checkpoint() == (0, 0)
