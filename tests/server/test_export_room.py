"""`labchat-admin export-room`: a room's transcript from the server's database (docs/protocol.md 20.6)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from labchat.server import admin
from labchat.server.classroom_state import DoneItem, QueueItem, RoomPoll
from labchat.server.classroom_store import ClassroomStore
from labchat.server.store import RoomRecord, Store, StoredMessage


def classroom_db(path: Path) -> int:
    """A database with cs101: a message before the session, the session, messages, a poll and a
    help-queue log. Returns the session's start (ms)."""
    store = Store(path, scrypt_n=2**10)
    now = int(time.time() * 1000)
    start = now - 600_000
    store.save_room(RoomRecord("cs101", "teacher", "Lab 3"))
    msgs = [
        StoredMessage("cs101", 1, start - 60_000, "teacher", "before the bell", 0, 1),
        StoredMessage("cs101", 2, start + 1000, "teacher", "welcome to <lab 3>", 0, 2),
        StoredMessage("cs101", 3, start + 2000, "budi", "```\nint main() {}\n```", 0, 3),
    ]
    store.append_messages(msgs, [x.user for x in msgs])
    cls = ClassroomStore(store)
    cls.start_session("cs101", start, 1)
    poll = RoomPoll(1, "teacher", "Done?", ("yes", "no"), False, start + 3000)
    poll.votes = {"budi": ("budi", 1), "cid": ("cid", 1), "dewi": ("dewi", 2)}
    poll.close(start + 4000)
    cls.save_poll("cs101", poll)
    for user, _ in poll.votes.values():
        cls.save_vote("cs101", 1, user, poll.votes[user][1])
    item = QueueItem("budi", "PC-14", "segfault", start + 2500, "teacher", start + 2600)
    cls.save_hand("cs101", item)
    cls.save_hand("cs101", QueueItem("cid", "PC-2", "loops", start + 5000))
    cls.remove_hand("cs101", DoneItem(item, start + 9000, "teacher"))
    store.close()
    return start


def test_export_room_writes_markdown_and_html_from_the_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "server.db"
    classroom_db(db)
    out = tmp_path / "out" / "lab3"
    out.parent.mkdir()
    assert admin.main(["--db", str(db), "export-room", "#cs101", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}.md and {out}.html\n"
    md = (tmp_path / "out" / "lab3.md").read_text()
    assert "before the bell" not in md and "welcome to &lt;lab 3&gt;" in md
    assert "```\nint main() {}\n```" in md
    assert "yes 2, no 1 (3 voted)" in md
    assert (
        "| budi | PC-14 | segfault | teacher at" in md and "| cid | PC-2 | loops |  | still waiting |" in md
    )
    page = (tmp_path / "out" / "lab3.html").read_text()
    assert "welcome to &lt;lab 3&gt;" in page and "<pre><code>int main() {}</code></pre>" in page
    assert (
        admin.main(["--db", str(db), "export-room", "cs101", "--since", "2h", "--out", str(out) + ".md"]) == 0
    )
    assert "before the bell" in (tmp_path / "out" / "lab3.md").read_text()


def test_export_room_default_path_and_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "server.db"
    start = classroom_db(db)
    monkeypatch.chdir(tmp_path)
    assert admin.main(["--db", str(db), "export-room", "cs101"]) == 0
    day = time.strftime("%Y-%m-%d", time.localtime(start / 1000))
    assert (tmp_path / f"cs101-{day}.md").exists() and (tmp_path / f"cs101-{day}.html").exists()
    capsys.readouterr()
    for args, words in (
        (["export-room", "nosuch"], "no room named 'nosuch'"),
        (["export-room", "cs101", "--since", "yesterday"], "--since 'yesterday': give an ISO time"),
        (["export-room", "lobby", "--since", "session"], "no class session was started in lobby"),
        (["export-room", "cs101", "--out", str(tmp_path / "no" / "dir" / "x")], "cannot write"),
    ):
        assert admin.main(["--db", str(db), *args]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("labchat-admin: ") and words in err, err
    with pytest.raises(SystemExit) as exit_:
        admin.main(["--db", str(db), "export-room"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_export_lists_the_files_offered_to_the_room_only(tmp_path: Path) -> None:
    """With the files table of docs/protocol.md 21 (as the files part of the server keeps it)."""
    db = tmp_path / "server.db"
    start = classroom_db(db)
    store = Store(db)
    store._write([(
        "CREATE TABLE IF NOT EXISTS files (id INTEGER PRIMARY KEY, sender TEXT, sender_key TEXT, room TEXT,"
        " to_name TEXT DEFAULT '', to_key TEXT DEFAULT '', name TEXT, size INTEGER, created_ms INTEGER,"
        " stored_ms INTEGER)", (),
    )])  # fmt: skip
    rows = [
        ("teacher", "cs101", "", "lab3.pdf", 250_000, start + 100, start + 200),
        ("budi", "cs101", "teacher", "secret.c", 10, start + 300, start + 400),  # to one member
        ("cid", "cs101", "", "half.zip", 10, start + 500, None),  # never finished
    ]
    for sender, room, to, name, size, created, stored in rows:
        store._write([(
            "INSERT INTO files (sender, sender_key, room, to_name, to_key, name, size, created_ms, stored_ms,"
            " sha256, touched_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sender, sender, room, to, to, name, size, created, stored, bytes(32), created),
        )])  # fmt: skip
    store.close()
    assert admin.main(["--db", str(db), "export-room", "cs101", "--out", str(tmp_path / "t")]) == 0
    md = (tmp_path / "t.md").read_text()
    assert "teacher offered the file `lab3.pdf` (244.1 KB)" in md
    assert "secret.c" not in md and "half.zip" not in md
