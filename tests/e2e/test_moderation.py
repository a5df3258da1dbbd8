"""A teacher's controls as a class meets them: `labchat-admin grant`, then mute, kick, ban and an
announcement's read tally, driven through `--json` line-mode clients and a server, all processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from .procs import PYTHON, Proc, env_for, spawn, start_client_proc, start_server_proc

pytestmark = pytest.mark.timeout(90)


async def admin(tmp_path: Path, db: Path, *args: str) -> str:
    """Run `labchat-admin --db DB ARGS...` to the end; returns its stdout (fails on a non-zero exit)."""
    proc = await spawn(PYTHON, "-m", "labchat.server.admin", "--db", str(db), *args, env=env_for(tmp_path))
    code = await proc.wait(30)
    assert code == 0, (args, proc.lines, await proc.stderr())
    return "\n".join(proc.lines)


async def class_of(tmp_path: Path, room: str, *students: str) -> tuple[Proc, int, Proc, list[Proc]]:
    """A server, an admin account `teacher`, and everyone logged in with `--room ROOM`."""
    db = tmp_path / "server.db"
    await admin(tmp_path, db, "add", "teacher")
    assert "teacher" in await admin(tmp_path, db, "grant", "teacher")
    assert "teacher" in await admin(tmp_path, db, "list")
    server, port = await start_server_proc(tmp_path, db=db)
    teacher = await start_client_proc(tmp_path, port, "teacher", "--json", "--room", room)
    await teacher.expect_json(type="room", room=room)
    procs = []
    for name in students:
        p = await start_client_proc(tmp_path, port, name, "--json", "--room", room)
        await p.expect_json(type="room", room=room)
        procs.append(p)
    return server, port, teacher, procs


async def leave(*procs: Proc) -> None:
    for p in procs:
        p.send("QUIT")
    for p in procs:
        assert await p.wait(15) == 0


async def test_mute_kick_and_ban_as_the_room_sees_them(tmp_path: Path) -> None:
    server, _, teacher, (alice, bob) = await class_of(tmp_path, "cs101", "alice", "bob")

    # A student's op command is refused in one line, and changes nothing.
    alice.send("/kick bob")
    refused = await alice.expect_json(type="error", room="cs101")
    assert "operator" in refused["text"]

    at = {p: p.mark() for p in (teacher, alice, bob)}
    teacher.send("/mute bob 10 spamming")
    for p in (alice, bob, teacher):
        news = await p.expect_json(type="room_event", room="cs101", action="mute", target="bob", since=at[p])
        assert news["actor"] == "teacher" and news["minutes"] == 10
        assert "bob was muted for 10 min by teacher" in news["text"]
    await server.expect(r"bob.*muted.*teacher|teacher.*muted.*bob")
    at[bob] = bob.mark()
    bob.send("can anyone hear me")
    failed = await bob.expect_json(type="error", room="cs101", since=at[bob])
    assert "muted" in failed["text"]
    teacher.send("/unmute bob")
    await bob.expect_json(type="room_event", room="cs101", action="unmute", target="bob")
    bob.send("back again")
    await alice.expect_json(type="message", room="cs101", user="bob", text="back again")
    # The muted line was never relayed: alice got bob's next one and not the refused one.
    assert not [e for e in alice.events("message") if e["text"] == "can anyone hear me"]

    teacher.send("/kick bob too loud")
    gone = await bob.expect_json(type="part", room="cs101", code="kicked")
    assert (gone["by"], gone["reason"]) == ("teacher", "too loud")
    await alice.expect_json(type="room_event", room="cs101", action="kick", target="bob")
    at = {p: p.mark() for p in (teacher, alice, bob)}
    bob.send("/join cs101")  # a kick is not a ban: bob may come back
    await bob.expect_json(type="room", room="cs101", joined=True, since=at[bob])
    await alice.expect_json(type="join", room="cs101", user="bob", since=at[alice])

    teacher.send("/ban bob 5 cheating")
    banned = await bob.expect_json(type="part", room="cs101", code="banned")
    assert banned["until"] is not None
    await alice.expect_json(type="room_event", room="cs101", action="ban", target="bob")
    at[bob] = bob.mark()
    bob.send("/join cs101")
    refused = await bob.expect_json(type="error", room="cs101", request="join", since=at[bob])
    assert "banned" in refused["text"]
    teacher.send("/unban bob")
    await teacher.expect_json(type="room_event", room="cs101", action="unban", target="bob")
    at[bob] = bob.mark()
    bob.send("/join cs101")
    await bob.expect_json(type="room", room="cs101", joined=True, since=at[bob])
    await server.expect(r"bob.*banned.*teacher|teacher.*banned.*bob")
    await leave(teacher, alice, bob)
    await server.kill()


async def test_an_announcement_is_pinned_and_its_tally_reaches_2_of_2(tmp_path: Path) -> None:
    server, port, teacher, (alice, bob) = await class_of(tmp_path, "cs101", "alice", "bob")
    teacher.send("/announce Quiz at 10:00, bring a pencil")
    for p in (alice, bob):
        shown = await p.expect_json(type="announcement", room="cs101", by="teacher")
        assert shown["text"] == "Quiz at 10:00, bring a pencil"
    # Line mode acknowledges what it has printed; the teacher's tally counts both students.
    tally = await teacher.expect_json(type="tally", room="cs101", seen=2, total=2)
    assert tally["not_yet"] == []
    assert "seen by 2 of 2" in tally["text"]

    # A later joiner gets it at once too.
    carol = await start_client_proc(tmp_path, port, "carol", "--json", "--room", "cs101")
    later = await carol.expect_json(type="announcement", room="cs101")
    assert later["text"] == "Quiz at 10:00, bring a pencil"
    await teacher.expect_json(type="tally", room="cs101", seen=3, total=3)

    teacher.send("/announce clear")
    await alice.expect_json(type="announcement", room="cs101", text="")
    await leave(teacher, alice, bob, carol)
    await server.kill()


async def test_three_clients_two_rooms_and_a_moderated_room(tmp_path: Path) -> None:
    server, _, teacher, (alice, bob) = await class_of(tmp_path, "cs101", "alice", "bob")
    alice.send("/join lab-b")
    await alice.expect_json(type="room", room="lab-b", joined=True)
    alice.send("only in lab-b")  # the current room is the last one joined
    await alice.expect_json(type="message", room="lab-b", text="only in lab-b", own=True)
    alice.send("/say cs101 to the class")
    await bob.expect_json(type="message", room="cs101", text="to the class")

    teacher.send("/moderate on")
    await bob.expect_json(type="room_event", room="cs101", action="moderated", value="on")
    at = bob.mark()
    bob.send("may I?")
    failed = await bob.expect_json(type="error", room="cs101", since=at)
    assert "moderated" in failed["text"]
    teacher.send("/voice bob")
    await bob.expect_json(type="room_event", room="cs101", action="voice", target="bob")
    bob.send("thank you")
    await teacher.expect_json(type="message", room="cs101", user="bob", text="thank you")
    assert not [e for e in bob.events("message") if e["text"] == "only in lab-b"]
    assert not [e for e in teacher.events("message") if e["text"] == "only in lab-b"]
    await leave(teacher, alice, bob)
    await server.kill()
