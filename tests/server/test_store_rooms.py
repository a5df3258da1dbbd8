"""Schema 6 (rooms and roles, docs/protocol.md 18): a database made by the previous labchat (schema 5)
opens with every row it had, and the new tables keep what the relay needs across restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from labchat.server.store import _MIGRATIONS, SCHEMA_VERSION, RoomRecord, SanctionRecord, Store, StoredMessage


def version_5_database(path: Path) -> None:
    """Made by the schema-5 migrations themselves, then filled as the previous server would."""
    db = sqlite3.connect(path)
    for target in range(1, 6):
        script = _MIGRATIONS[target]
        for statement in script if isinstance(script, tuple) else script.split(";"):
            if statement.strip():
                db.execute(statement)
    db.execute("PRAGMA user_version=5")
    db.execute("INSERT INTO accounts VALUES ('alice', 'Alice', x'00', x'01', 1024, 8, 1, 5)")
    db.execute("INSERT INTO messages (room, seq, ts_ms, user, text) VALUES ('lobby', 1, 5, 'Alice', 'hi')")
    db.execute("INSERT INTO messages (room, seq, ts_ms, user, text) VALUES ('physics', 7, 6, 'Alice', 'yo')")
    db.execute("INSERT INTO room_seq VALUES ('lobby', 1), ('physics', 7)")
    db.commit()
    db.close()


def test_version_5_database_is_upgraded_without_losing_a_row(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    version_5_database(path)
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION >= 7
    assert store.get_account("ALICE") is not None and not store.is_admin("alice")
    assert [m.text for m in store.last_messages("lobby", 10)] == ["hi"]
    assert store.last_seq("physics") == 7
    assert [r.name for r in store.load_rooms()] == ["lobby", "physics"]  # rooms with history are rooms
    assert store.search("lobby", "hi", 5)[0].seq == 1
    assert store.memberships_of("alice") == []  # the first login records LOGIN's room (18.3)


def test_rooms_roles_sanctions_invites_and_seen_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path, scrypt_n=2**10)
    store.create_account("Alice", "secret")
    store.save_room(RoomRecord("cs101", "Alice", "Lab 3", 0x8, "k", 1000, 2, "Quiz", "Alice", 1500))
    store.add_membership("alice", "lobby")
    store.add_membership("Alice", "cs101")
    store.add_membership("alice", "lobby")  # already there: keeps its place
    store.set_role("cs101", "Bob", "voice")
    store.set_role("cs101", "bob", "op")
    store.set_sanction(SanctionRecord("cs101", "carl", "mute", 90_000, "Alice", "spam"))
    store.set_sanction(SanctionRecord("cs101", "dina", "ban", None, "Alice", ""))
    store.add_invite("cs101", "Eve")
    store.mark_seen("cs101", 2, "Alice")
    store.mark_seen("cs101", 2, "alice")
    assert store.set_admin("ALICE", True) and not store.set_admin("nobody", True)
    store.close()

    again = Store(path)
    expected = RoomRecord("cs101", "Alice", "Lab 3", 0x8, "k", 1000, 2, "Quiz", "Alice", 1500)
    assert again.load_rooms()[0] == expected
    assert again.memberships_of("ALICE") == ["lobby", "cs101"]
    assert again.member_counts() == {"lobby": 1, "cs101": 1}
    assert again.member_names("cs101") == ["Alice"]
    assert again.load_roles() == [("cs101", "bob", "op")]
    assert sorted((s.account_key, s.kind, s.until_ms) for s in again.load_sanctions()) == [
        ("carl", "mute", 90_000), ("dina", "ban", None)
    ]
    assert again.load_invites() == [("cs101", "eve")]
    assert again.seen_by("cs101", 2) == {"alice"}
    assert again.is_admin("alice") and again.list_admins() == ["Alice"]
    assert again.lift_sanction("cs101", "carl", "mute") and not again.lift_sanction("cs101", "carl", "mute")
    assert again.remove_membership("alice", "lobby") and again.memberships_of("alice") == ["cs101"]
    again.append_messages([StoredMessage("cs101", 1, 5, "Alice", "x", 0, 9)], ["alice"])


def test_odd_rows_are_skipped_with_a_warning_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO rooms (name) VALUES ('Not A Room!')")
    db.execute("INSERT INTO rooms (name, modes) VALUES ('typed', 'not a number')")
    db.execute("INSERT INTO roles VALUES ('lobby', 'bob', 'king')")
    db.execute("INSERT INTO sanctions VALUES ('lobby', 'bob', 'jail', NULL, '', '')")
    db.execute("INSERT INTO sanctions VALUES ('lobby', 'bob', 'mute', 'soon', '', '')")
    db.commit()
    db.close()
    store = Store(path)
    assert [r.name for r in store.load_rooms()] == ["lobby"]
    assert store.load_roles() == [] and store.load_sanctions() == []
    assert len(store.warnings) == 5 and all("skipped" in w for w in store.warnings)
