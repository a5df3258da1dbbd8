"""`labchat-admin --cluster URLS import FILE` against a real three-node JetStream cluster: every room's
history lands in its stream with the same seqs, accounts in the ACCOUNTS bucket; a re-run imports
nothing twice; a stream with another history is refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from labchat.protocol import messages as m
from labchat.server import admin
from labchat.server.backup import export_database
from labchat.server.cluster import names
from labchat.server.cluster.codec import decode_account, decode_room_message
from labchat.server.cluster.connection import ClusterConnection
from labchat.server.cluster.importer import ClusterImportError, import_into_cluster
from labchat.server.cluster.moderation import decode_moderation
from labchat.server.store import hash_password
from tests.nats_cluster import NatsCluster
from tests.server.test_backup import make_server_db


async def stream_messages(conn: ClusterConnection, room: str) -> list[tuple[int, str]]:
    stream = names.room_stream(room)
    info = await conn.js.stream_info(stream)
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await conn.js.get_msg(stream, seq)
        except Exception:  # a deleted seq (a hole kept from the single server's history)
            continue
        found.append((seq, decode_room_message(msg.data).text))
    return found


async def test_history_and_accounts_go_into_the_cluster_with_their_seqs(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    make_server_db(tmp_path / "a.db")
    export_database(tmp_path / "a.db", tmp_path / "backup.jsonl")
    conn = await ClusterConnection.connect(nats_cluster.urls)
    try:
        done = await import_into_cluster(conn, tmp_path / "backup.jsonl")
        assert (done.messages_published, done.accounts_created, done.messages_present) == (5, 2, 0)
        assert done.moderation_created == 3
        assert await stream_messages(conn, "cs101") == [(s, f"line {s} ✓") for s in (3, 4, 7, 8)]
        assert await stream_messages(conn, "lobby") == [(1, "hi")]
        empty = await conn.js.stream_info(names.room_stream("empty-room"))
        assert (empty.state.messages, empty.state.last_seq) == (0, 9)  # the next message gets seq 10
        settings = await conn.bucket(names.SETTINGS_BUCKET)
        actions = {}
        for key in await settings.keys():
            value = (await settings.get(key)).value
            assert value is not None
            actions[key] = decode_moderation(value)
        ban = actions[f"mod.{names.token('cs101')}.{names.token('mallory')}.ban"]
        assert (ban.action, ban.minutes, ban.reason) == (m.Action.BAN, 0, "spam")  # until lifted
        voice = actions[f"mod.{names.token('cs101')}.{names.token('bob')}.role"]
        assert voice.action == m.Action.VOICE
        assert f"mod.{names.token('cs101')}.{names.token('bob')}.invite" in actions
        assert f"mod.{names.token('lobby')}.{names.token('bob')}.mute" not in actions  # ended long ago
        bucket = await conn.bucket(names.ACCOUNTS_BUCKET)
        alice = decode_account((await bucket.get(names.token("alice"))).value or b"")
        assert alice.name == "Alice" and alice.admin
        assert hash_password("alice-password", alice.salt, alice.n, alice.r, alice.p) == alice.digest
        # A re-run finds everything there and writes nothing.
        again = await import_into_cluster(conn, tmp_path / "backup.jsonl")
        assert (again.messages_published, again.messages_present, again.accounts_present) == (0, 5, 2)
        assert (again.moderation_created, again.moderation_present) == (0, 3)
        assert [s for s, _ in await stream_messages(conn, "cs101")] == [3, 4, 7, 8]
        # A live message after the import goes on from the room's numbering.
        ack = await conn.js.publish(names.room_subject("cs101"), b"live")
        assert ack.seq == 9
    finally:
        await conn.close()


async def test_a_room_with_another_history_is_refused(nats_cluster: NatsCluster, tmp_path: Path) -> None:
    make_server_db(tmp_path / "a.db")
    export_database(tmp_path / "a.db", tmp_path / "backup.jsonl")
    conn = await ClusterConnection.connect(nats_cluster.urls)
    try:
        # retried as a relay does, while the new stream's leader is being elected
        await conn.publish_room("lobby", b"someone else's line", "elsewhere-1", time.monotonic() + 15)
        with pytest.raises(ClusterImportError, match="did not come from this file"):
            await import_into_cluster(conn, tmp_path / "backup.jsonl")
    finally:
        await conn.close()


def test_the_admin_command_imports_into_the_cluster(
    nats_cluster: NatsCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_server_db(tmp_path / "a.db")
    assert admin.main(["--db", str(tmp_path / "a.db"), "export", str(tmp_path / "b.jsonl")]) == 0
    assert admin.main(["--cluster", nats_cluster.url_list, "import", str(tmp_path / "b.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "5 messages in 3 rooms (0 already there), 2 accounts" in out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format":"labchat-export","version":1}\n{"type":"nonsense"}\n')
    assert admin.main(["--cluster", nats_cluster.url_list, "import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "line 2: unknown record type" in err and err.count("\n") == 1
