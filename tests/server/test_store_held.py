"""Schema 3 (held private messages): a database made by the previous labchat opens unchanged."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from labchat.server.store import SCHEMA_VERSION, Store, StoredMessage

#: The schema exactly as labchat created it before held messages existed (version 2).
SCHEMA_2 = """
    CREATE TABLE accounts (key TEXT PRIMARY KEY, name TEXT NOT NULL, salt BLOB NOT NULL,
        hash BLOB NOT NULL, scrypt_n INTEGER NOT NULL, scrypt_r INTEGER NOT NULL,
        scrypt_p INTEGER NOT NULL, created_ms INTEGER NOT NULL);
    CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, ts_ms INTEGER NOT NULL,
        user TEXT NOT NULL, text TEXT NOT NULL, flags INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (room, seq));
    ALTER TABLE messages ADD COLUMN user_key TEXT NOT NULL DEFAULT '';
    ALTER TABLE messages ADD COLUMN msg_id INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_by_msg_id ON messages (user_key, msg_id);
    PRAGMA user_version = 2;
"""


def version_2_database(path: Path) -> None:
    """A database as the previous labchat leaves it: an account and some history, in WAL mode."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA_2)
    db.execute("INSERT INTO accounts VALUES ('alice', 'Alice', x'00', x'01', 1024, 8, 1, 5)")
    db.executemany(
        "INSERT INTO messages VALUES ('lobby', ?, ?, 'Alice', ?, 0, 'alice', ?)",
        [(i, 1000 + i, f"old {i}", 100 + i) for i in range(1, 4)],
    )
    db.commit()
    db.close()


def test_version_2_database_is_upgraded_without_losing_a_row(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    version_2_database(path)
    store = Store(path, scrypt_n=2**10)
    assert store.schema_version == SCHEMA_VERSION >= 7  # 6: rooms and roles (18), 7: the classroom (20)
    assert store.get_account("ALICE") is not None
    assert [m.text for m in store.last_messages("lobby", 10)] == ["old 1", "old 2", "old 3"]
    found = store.find_message("alice", 102)
    assert found is not None and found.seq == 2
    assert store.held_count("bob") == 0
    store.append_messages([StoredMessage("lobby", 4, 2000, "Alice", "new", 0, 104)], ["alice"])
    store.hold_private("Alice", "Bob", 3000, "for later", 0, 7)
    store.close()
    again = Store(path, scrypt_n=2**10)  # and it opens again as version 3
    assert again.last_seq("lobby") == 4
    assert [h.text for h in again.held_for("bob", 10)] == ["for later"]


def test_held_messages_keep_order_are_idempotent_and_expire(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", scrypt_n=2**10)
    assert store.hold_private("alice", "Bob", 1000, "one", 0, 2**64 - 1) == 1000
    assert store.hold_private("carol", "bob", 2000, "two", 1, 5) == 2000
    assert store.hold_private("ALICE", "bob", 9999, "one, resent", 0, 2**64 - 1) == 1000  # kept once
    assert store.find_held("alice", 2**64 - 1) == 1000 and store.find_held("alice", 5) is None
    held = store.held_for("BOB", 10)
    assert [(h.sender, h.to, h.text, h.flags, h.msg_id) for h in held] == [
        ("alice", "Bob", "one", 0, 2**64 - 1),
        ("carol", "bob", "two", 1, 5),
    ]
    assert store.expire_held(1500) == 1
    store.delete_held([held[1].id])
    assert store.held_count("bob") == 0
