"""History retention: age and size limits, batches, seq numbering after pruning and across restarts."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from labchat.protocol import events as ev
from labchat.server.retention import DAY_S, HistoryPruner, RetentionPolicy, prune_regularly
from labchat.server.room import Room
from labchat.server.store import Store, StoredMessage, StoreError

from ..helpers import connect, start_server

T0 = 1_800_000_000.0  # a fixed "now" for the fake clock, in seconds


def make(path: Path) -> Store:
    return Store(path, scrypt_n=2**10)


def add(store: Store, first_seq: int, count: int, ts_s: float, room: str = "lobby", size: int = 100) -> None:
    msgs = [
        StoredMessage(room, seq, int(ts_s * 1000), "ana", "x" * size, 0, seq)
        for seq in range(first_seq, first_seq + count)
    ]
    store.append_messages(msgs, ["ana"] * count)


def test_messages_older_than_the_limit_go_in_batches(tmp_path: Path) -> None:
    store = make(tmp_path / "s.db")
    add(store, 1, 1200, T0 - 400 * DAY_S)  # over a year old
    add(store, 1201, 30, T0 - 10 * DAY_S)
    room = Room("lobby", next_seq=1231)
    for stored in store.last_messages("lobby", 1230):
        room.remember(stored)
    pruner = HistoryPruner(store, {"lobby": room}, RetentionPolicy(max_age_s=365 * DAY_S, batch_rows=500))
    assert [pruner.step(T0) for _ in range(4)] == [500, 500, 200, 0]
    assert [m.seq for m in store.messages_after("lobby", 0, 5000)] == list(range(1201, 1231))
    assert room.recent[0].seq == 1201  # what the store forgot, memory forgets too
    assert store.last_seq("lobby") == 1230
    # A day later nothing else is old enough; in 356 days the rest is.
    assert pruner.run_once(T0 + DAY_S) == 0
    assert pruner.run_once(T0 + 356 * DAY_S) == 30
    assert pruner.deleted == 1230


def test_after_pruning_everything_the_next_seq_follows_the_last_even_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = make(path)
    add(store, 1, 40, T0 - 2 * DAY_S)
    add(store, 1, 5, T0 - 2 * DAY_S, room="other")
    pruner = HistoryPruner(store, {}, RetentionPolicy(max_age_s=DAY_S))
    assert pruner.run_once(T0) == 45
    assert store.messages_after("lobby", 0, 100) == []
    assert store.last_seq("lobby") == 40 and store.last_seq("other") == 5
    store.close()
    reopened = make(path)
    assert reopened.last_seq("lobby") == 40  # a restarted room numbers on from 41, never from 1
    assert reopened.last_seq("other") == 5
    assert reopened.last_seq("never-used") == 0
    add(reopened, 41, 1, T0)
    assert [m.seq for m in reopened.messages_after("lobby", 0, 10)] == [41]


def test_size_cap_deletes_oldest_until_the_database_fits(tmp_path: Path) -> None:
    store = make(tmp_path / "s.db")
    for batch in range(20):
        add(store, 1 + batch * 500, 500, T0 - 1000 + batch, size=400)  # ≈ 4.5 MB in all
    used = store.used_bytes()
    assert used > 4_000_000
    cap = used // 2
    pruner = HistoryPruner(store, {}, RetentionPolicy(max_age_s=None, max_bytes=cap, batch_rows=500))
    deleted = pruner.run_once(T0)
    assert store.used_bytes() <= cap
    assert 4000 <= deleted <= 6500  # about half, in whole batches
    kept = store.messages_after("lobby", 0, 20_000)
    assert kept[0].seq == deleted + 1 and kept[-1].seq == 10_000  # the oldest went, the newest stayed
    # New messages reuse the freed pages: the file does not grow past what it was.
    size_before = (tmp_path / "s.db").stat().st_size
    add(store, 10_001, 2000, T0, size=400)
    store.checkpoint()
    pruner.run_once(T0)
    store.checkpoint()
    assert (tmp_path / "s.db").stat().st_size <= size_before * 1.1


def test_no_limits_delete_nothing(tmp_path: Path) -> None:
    store = make(tmp_path / "s.db")
    add(store, 1, 10, 0.0)
    assert HistoryPruner(store, {}, RetentionPolicy(max_age_s=None, max_bytes=None)).run_once(T0) == 0
    assert HistoryPruner(store, {}, RetentionPolicy(max_age_s=None, max_bytes=10**9)).run_once(T0) == 0


def test_upgrade_from_schema_2_keeps_the_last_seq(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE accounts (key TEXT PRIMARY KEY, name TEXT NOT NULL, salt BLOB NOT NULL,
            hash BLOB NOT NULL, scrypt_n INTEGER NOT NULL, scrypt_r INTEGER NOT NULL,
            scrypt_p INTEGER NOT NULL, created_ms INTEGER NOT NULL);
        CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL, ts_ms INTEGER NOT NULL,
            user TEXT NOT NULL, text TEXT NOT NULL, flags INTEGER NOT NULL DEFAULT 0,
            user_key TEXT NOT NULL DEFAULT '', msg_id INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (room, seq));
        INSERT INTO messages VALUES ('lobby', 77, 5, 'alice', 'old', 0, 'alice', 1);
        PRAGMA user_version = 2;
        """
    )
    db.close()
    store = make(path)
    assert HistoryPruner(store, {}, RetentionPolicy(max_age_s=DAY_S)).run_once(T0) == 1
    assert store.last_seq("lobby") == 77


def test_a_database_damaged_inside_fails_at_start_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = make(path)
    add(store, 1, 3000, T0, size=200)
    store.close()
    data = bytearray(path.read_bytes())
    data[-4096:] = b"\xa5" * 4096  # the last page: part of the messages table
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as raised:
        make(path)
    assert "cannot open database" in str(raised.value) and "\n" not in str(raised.value)


async def test_pruning_runs_in_the_background_between_batches(tmp_path: Path) -> None:
    store = make(tmp_path / "s.db")
    add(store, 1, 1500, T0 - 2 * DAY_S)
    pruner = HistoryPruner(store, {}, RetentionPolicy(max_age_s=DAY_S, batch_rows=100, interval_s=3600))
    ticks = 0

    async def ticker() -> None:  # proves the loop runs between batches
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    pruned = asyncio.Event()
    tick_task = asyncio.create_task(ticker())
    task = asyncio.create_task(prune_regularly(pruner, lambda: T0, pruned))
    await asyncio.wait_for(pruned.wait(), 10)
    task.cancel()
    tick_task.cancel()
    assert pruner.deleted == 1500
    assert ticks >= 15  # the loop ran between each two of the 15 batches
    assert store.messages_after("lobby", 0, 10) == []


async def test_running_server_prunes_at_start_and_numbers_on(tmp_path: Path) -> None:
    store = make(tmp_path / "server.db")
    add(store, 1, 30, time.time() - 3 * DAY_S)  # all older than the server's retention
    store.close()
    server = await start_server(tmp_path, retention=RetentionPolicy(max_age_s=DAY_S))
    try:
        await asyncio.wait_for(server.protocol.pruned.wait(), 10)
        assert server.protocol.pruner.deleted == 30
        ana = await connect(server, "ana", tmp_path=tmp_path)
        bob = await connect(server, "bob", tmp_path=tmp_path)
        assert not ana.of(ev.MessageReceived)  # no history left to replay
        ana.client.submit("after the pruning")
        got = await bob.wait_for(ev.MessageReceived)
        assert got.seq == 31  # numbering goes on from the last message ever stored
        await ana.close()
        await bob.close()
    finally:
        await server.stop(grace_s=0)
