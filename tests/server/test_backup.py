"""`labchat-admin export` / `import` with SQLite: a round trip that keeps everything, and bad files
refused in one line with their line number, nothing half-imported."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labchat.server import admin
from labchat.server.backup import (
    ExportFileError,
    check_file,
    export_database,
    import_database,
    read_export,
)
from labchat.server.store import RoomRecord, SanctionRecord, Store, StoredMessage
from tests.helpers import TEST_SCRYPT_N


def make_server_db(path: Path) -> None:
    """A database with some of everything an export carries, history with holes, a big msg_id."""
    store = Store(path, scrypt_n=TEST_SCRYPT_N)
    store.create_account("Alice", "alice-password")
    store.create_account("bob", "bob-password")
    store.set_admin("Alice", True)
    store.save_room(RoomRecord("cs101", "Alice", "intro", 3, "k3y", 1000, 2, "read this", "Alice", 1500))
    store.save_room(RoomRecord("empty-room", "bob", created_ms=5))
    store.set_role("cs101", "bob", "voice")
    store.set_sanction(SanctionRecord("cs101", "mallory", "ban", None, "Alice", "spam"))
    store.set_sanction(SanctionRecord("lobby", "bob", "mute", 99_000, "Alice", ""))
    store.add_membership("Alice", "cs101")
    store.add_membership("Alice", "lobby")
    store.add_invite("cs101", "bob")
    msgs = [StoredMessage("cs101", seq, 10 * seq, "Alice" if seq % 2 else "bob", f"line {seq} ✓", 0, seq)
            for seq in (3, 4, 7, 8)]
    msgs.append(StoredMessage("lobby", 1, 1, "bob", "hi", 1, 2**64 - 5))
    store.append_messages(msgs, [m.user.casefold() for m in msgs])
    store.append_messages([StoredMessage("empty-room", 9, 1, "bob", "gone", 0, 1)], ["bob"])
    store._db.execute("DELETE FROM messages WHERE room = 'empty-room'")  # pruned: only its last_seq stays
    store.close()


def test_export_then_import_into_a_fresh_database_keeps_everything(tmp_path: Path) -> None:
    make_server_db(tmp_path / "a.db")
    first = tmp_path / "backup.jsonl"
    counts = export_database(tmp_path / "a.db", first, now_ms=1)
    assert (counts.account, counts.room, counts.message) == (2, 3, 5)
    assert import_database(first, tmp_path / "b.db").as_dict() == counts.as_dict()
    second = tmp_path / "again.jsonl"
    export_database(tmp_path / "b.db", second, now_ms=1)
    assert first.read_bytes() == second.read_bytes()  # the restored database exports the same file
    restored = Store(tmp_path / "b.db")
    try:
        assert restored.check_password("alice", "alice-password")
        assert restored.list_admins() == ["Alice"]
        assert [m.seq for m in restored.messages_after("cs101", 0, 10)] == [3, 4, 7, 8]
        assert restored.find_message("bob", 2**64 - 5) is not None  # resends stay idempotent
        assert restored.last_seq("empty-room") == 9  # numbers never repeat after a restore
        assert [m.room for m in restored.search("cs101", "line", 10)]
        assert restored.memberships_of("alice") == ["cs101", "lobby"]
    finally:
        restored.close()


def test_compressed_export_and_the_admin_command_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_server_db(tmp_path / "a.db")
    out = tmp_path / "backup.jsonl.gz"
    assert admin.main(["--db", str(tmp_path / "a.db"), "export", str(out)]) == 0
    assert json.loads(gzip.decompress(out.read_bytes()).splitlines()[0])["format"] == "labchat-export"
    assert admin.main(["--db", str(tmp_path / "b.db"), "import", str(out)]) == 0
    assert "imported 2 accounts, 3 rooms and 5 messages" in capsys.readouterr().out
    # Into a database that has accounts already: refused in one line, nothing changed.
    assert admin.main(["--db", str(tmp_path / "b.db"), "import", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fresh database" in err
    assert admin.main(["--db", str(tmp_path / "missing.db"), "export", str(tmp_path / "x")]) == 1
    assert "no database at" in capsys.readouterr().err


def test_a_bad_line_is_named_and_nothing_is_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_server_db(tmp_path / "a.db")
    good = tmp_path / "backup.jsonl"
    export_database(tmp_path / "a.db", good)
    lines = good.read_bytes().splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b"".join(lines[:-3]) + b'{"type": "message", "room": "cs101"}\n' + lines[-1])
    assert admin.main(["--db", str(tmp_path / "c.db"), "import", str(broken)]) == 1
    err = capsys.readouterr().err
    assert f"line {len(lines) - 2}:" in err and "nothing was imported" in err and err.count("\n") == 1
    db = sqlite3.connect(tmp_path / "c.db")
    assert db.execute("SELECT count(*) FROM accounts").fetchone() == (0,)  # the transaction rolled back
    assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)
    db.close()
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_bytes(b"".join(lines[:-1]))
    with pytest.raises(ExportFileError, match="truncated") as info:
        check_file(truncated)
    assert info.value.line == len(lines)


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ([b'{"format": "labchat-export", "version": 2}'], 1, "newer than this labchat"),
        ([b"not json"], 1, "not a JSON record"),
        ([b'{"format": "labchat-export", "version": 1}', b'{"type": "room", "name": "Bad Room"}'], 2,
         "invalid room name"),
        ([b'{"format": "labchat-export", "version": 1}',
          b'{"type":"message","room":"lobby","seq":1,"ts":0,"user":"a","text":"","flags":0,"id":0}'], 2,
         "no room record"),
    ],
)
def test_bad_records_are_refused_with_their_line(body: list[bytes], line: int, words: str) -> None:
    with pytest.raises(ExportFileError, match=words) as info:
        list(read_export(b + b"\n" for b in body))
    assert info.value.line == line


def test_messages_out_of_order_are_refused(tmp_path: Path) -> None:
    make_server_db(tmp_path / "a.db")
    good = tmp_path / "backup.jsonl"
    export_database(tmp_path / "a.db", good)
    lines = good.read_bytes().splitlines(keepends=True)
    first_message = next(i for i, raw in enumerate(lines) if b'"type":"message"' in raw)
    lines[first_message], lines[first_message + 1] = lines[first_message + 1], lines[first_message]
    with pytest.raises(ExportFileError, match="after seq") as info:
        list(read_export(lines))
    assert info.value.line == first_message + 2


HEADER = b'{"format":"labchat-export","version":1}\n'


@given(st.lists(st.binary(max_size=120) | st.sampled_from([
    b'{"type":"account","name":"ann","salt":"00","hash":"11","n":1024,"r":8,"p":1,"admin":false,'
    b'"created_ms":0}',
    b'{"type":"room","name":"lobby","creator":"","topic":"","modes":0,"key":"","created_ms":0,'
    b'"ann_id":0,"ann_text":"","ann_by":"","ann_ms":0,"last_seq":5}',
    b'{"type":"message","room":"lobby","seq":2,"ts":0,"user":"ann","text":"x","flags":0,"id":1}',
    b'{"type":"end","counts":{}}', b'{"type":"role","room":"lobby","account":"ann","role":"op"}',
    b'{"type":"message","room":"lobby","seq":1e400}', b"[1, 2]", b"{}", b"\xff\xfe",
]), max_size=8), st.booleans())
def test_any_file_reads_or_is_refused_with_export_file_error(lines: list[bytes], header: bool) -> None:
    """The reader's invariant: untrusted bytes either read as records or raise ExportFileError
    (with a line number inside the file), never anything else."""
    data = [HEADER] if header else []
    data += [line + b"\n" for line in lines]
    try:
        list(read_export(data))
    except ExportFileError as exc:
        assert 1 <= exc.line <= len(data) + 1
