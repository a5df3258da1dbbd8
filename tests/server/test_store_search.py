"""The search index (schema 3): built from the rows of an older database at open, kept in step by
triggers, and fed any words a user types without an error (docs/protocol.md section 15.5)."""

from __future__ import annotations

import functools
import sqlite3
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from labchat.server import store as store_module
from labchat.server.store import SCHEMA_VERSION, Store, StoredMessage


def _schema_2_database(path: Path) -> None:
    """A database exactly as the previous labchat (schema 2) left it, with messages in it."""
    db = sqlite3.connect(path)
    for version in (1, 2):
        script = store_module._MIGRATIONS[version]
        assert isinstance(script, str)
        db.executescript(script)
    db.executemany(
        "INSERT INTO messages (room, seq, ts_ms, user, text, flags, user_key, msg_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            ("lobby", 1, 1000, "alice", "the printer on floor 3 is jammed", 0, "alice", 11),
            ("lobby", 2, 2000, "bob", "printer fixed", 1, "bob", 12),
            ("kitchen", 1, 3000, "bob", "printer in the kitchen?", 0, "bob", 13),
        ],
    )
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()


def test_an_older_database_gets_its_index_built_at_open(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    _schema_2_database(path)
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION >= 7
    hits = store.search("lobby", "printer", 50)
    assert [(h.seq, h.user, h.flags) for h in hits] == [(2, "bob", 1), (1, "alice", 0)]
    assert hits[1].snippet == "the printer on floor 3 is jammed"
    # New messages are indexed by the triggers, in the same transaction as their row.
    store.append_messages([StoredMessage("lobby", 3, 4000, "carol", "Printer again!", 0, 14)], ["carol"])
    assert [h.seq for h in store.search("lobby", "PRINTER", 50)] == [3, 2, 1]
    assert [h.seq for h in store.search("kitchen", "printer", 50)] == [1]
    store.close()
    # Opening it again changes nothing and finds the same.
    again = Store(path)
    assert [h.seq for h in again.search("lobby", "printer", 50)] == [3, 2, 1]
    again.close()


def test_history_page_before_a_seq(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    store.append_messages(
        [StoredMessage("lobby", i, i, "alice", f"m{i}", 0, i) for i in range(1, 11)], ["alice"] * 10
    )
    assert [s.seq for s in store.messages_before("lobby", 8, 3)] == [5, 6, 7]
    assert [s.seq for s in store.messages_before("lobby", 2**64 - 1, 2)] == [9, 10]
    assert store.messages_before("lobby", 1, 5) == []


@functools.cache
def _searchable() -> Store:
    store = Store(":memory:")
    text = 'some words AND "quotes" * NEAR(x y) col:umn ^start'
    store.append_messages([StoredMessage("lobby", 1, 1, "a", text, 0, 1)], ["a"])
    return store


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_any_query_is_a_literal_search_never_an_error(query: str) -> None:
    for hit in _searchable().search("lobby", query, 5):
        assert hit.seq == 1


def test_pruned_messages_leave_the_index_too(tmp_path: Path) -> None:
    store = Store(tmp_path / "p.db")
    rows = [StoredMessage("lobby", i, i * 1000, "alice", f"needle {i}", 0, i) for i in range(1, 11)]
    store.append_messages(rows, ["alice"] * 10)
    assert store.prune_batch(before_ms=6000, max_bytes=None, batch=100).deleted == 5
    assert [h.seq for h in store.search("lobby", "needle", 50)] == [10, 9, 8, 7, 6]
    store.append_messages([StoredMessage("lobby", 11, 11_000, "alice", "needle 11", 0, 11)], ["alice"])
    assert [h.seq for h in store.search("lobby", "needle", 2)] == [11, 10]
