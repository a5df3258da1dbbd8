"""Rooms as users meet them in line mode, with real processes: a server and three clients in two rooms,
`--room` at start, `/say ROOM text`, `/join` of a room already held, and a server killed (-9) and
restarted under everyone's feet. (A teacher's moderation is tests/e2e/test_moderation.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from labchat.protocol.messages import CAP_ROOMS
from labchat.server.relay import RelayConfig

from .procs import PYTHON, Proc, env_for, spawn, start_client_proc, start_server_proc

pytestmark = pytest.mark.timeout(120)
needs_rooms = pytest.mark.skipif(
    not RelayConfig().capabilities & CAP_ROOMS, reason="this relay has no rooms (protocol 18) yet"
)


def said(proc: Proc, room: str) -> list[str]:
    """The texts of the room messages `proc` has printed for `room`, in order (its own included)."""
    return [e["text"] for e in proc.events("message") if e["room"] == room]


async def leave(*procs: Proc) -> None:
    for p in procs:
        p.send("QUIT")
    for p in procs:
        assert await p.wait(15) == 0


@needs_rooms
async def test_three_clients_two_rooms_messages_stay_in_their_room(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path, "--quiet")
    # alice in both rooms (lab-b last: her lines go there), bob in cs101, carol in lab-b (--plain).
    alice = await start_client_proc(tmp_path, port, "alice", "--json", "--room", "#CS101", "--room", "lab-b")
    for room in ("cs101", "lab-b"):
        state = await alice.expect_json(type="room", room=room, joined=True)
        assert state["you"] == ["op"]  # whoever creates a room is its operator
    bob = await start_client_proc(tmp_path, port, "bob", "--json", "--room", "cs101")
    await bob.expect_json(type="room", room="cs101", joined=True)
    carol = await start_client_proc(tmp_path, port, "carol", "--plain", "--room", "lab-b")
    await carol.expect(r"you joined #lab-b")
    await alice.expect_json(type="join", room="lab-b", user="carol")

    alice.send("hello lab-b")  # the current room: the last --room
    alice.send("/say cs101 hello class")
    bob.send("hi from cs101")
    await carol.expect(r"\d\d:\d\d:\d\d #lab-b <alice> hello lab-b")  # in lobby and lab-b: named
    await bob.expect_json(type="message", room="cs101", user="alice", text="hello class")
    await alice.expect_json(type="message", room="cs101", user="bob", text="hi from cs101")
    await alice.expect_json(type="message", room="lab-b", text="hello lab-b", own=True)

    # /join of a room already held switches to it: the next line goes to cs101.
    alice.send("/join cs101")
    await alice.expect_json(type="system", room="cs101", text="now talking in #cs101")
    alice.send("back in cs101")
    await bob.expect_json(type="message", room="cs101", user="alice", text="back in cs101")
    # /rooms lists where alice is, the current room marked.
    alice.send("/rooms")
    await alice.expect(r"you are in 3 rooms: #lobby, #cs101 \(current\), #lab-b")

    # A refused operator command is one error, tied to the script's line by its ref.
    bob.send('{"ref": "k1", "text": "/kick alice"}')
    refused = await bob.expect_json(type="error", ref="k1")
    assert (refused["room"], refused["request"]) == ("cs101", "moderate") and "operator" in refused["text"]

    # carol joins cs101: bob sees her come; nothing of lab-b ever reached bob, nor cs101 carol before.
    carol.send("/join cs101")
    await bob.expect_json(type="join", room="cs101", user="carol")
    bob.send("welcome carol")
    await carol.expect(r"#cs101 <bob> welcome carol")
    assert said(bob, "lab-b") == [] and "hello lab-b" not in said(bob, "cs101")
    assert not [line for line in carol.lines if "hello class" in line and "[history]" not in line]
    assert said(alice, "lab-b") == ["hello lab-b"]
    await leave(alice, bob, carol)
    await server.kill()


@needs_rooms
async def test_rooms_survive_a_server_kill_each_room_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    server, port = await start_server_proc(tmp_path, "--quiet", db=db)
    alice = await start_client_proc(tmp_path, port, "alice", "--json", "--room", "cs101", "--room", "lab-b")
    await alice.expect_json(type="room", room="lab-b", joined=True)
    bob = await start_client_proc(tmp_path, port, "bob", "--json", "--room", "cs101", "--room", "lab-b")
    await bob.expect_json(type="room", room="lab-b", joined=True)
    for i in range(3):
        bob.send(f"/say cs101 c{i}")
        bob.send(f"/say lab-b b{i}")
    await alice.expect_json(type="message", room="lab-b", text="b2")
    await alice.expect_json(type="message", room="cs101", text="c2")

    await server.kill()  # kill -9: no goodbye
    server, _ = await start_server_proc(tmp_path, "--quiet", db=db, port=port)
    for p in (alice, bob):
        await p.expect(r'"text": "reconnected as', timeout=30)
    bob.send("/say cs101 c3")
    bob.send("/say lab-b b3")
    await alice.expect_json(type="message", room="lab-b", text="b3", timeout=20)
    await alice.expect_json(type="message", room="cs101", text="c3", timeout=20)
    # Each room's messages once, in order, nothing replayed by the catch-up of either room.
    assert said(alice, "cs101") == ["c0", "c1", "c2", "c3"]
    assert said(alice, "lab-b") == ["b0", "b1", "b2", "b3"]
    # Still in both rooms, and still talking where she was (lab-b, the last --room).
    alice.send("still here")
    await bob.expect_json(type="message", room="lab-b", user="alice", text="still here")
    await leave(alice, bob)
    await server.kill()


async def test_a_bad_room_name_is_a_usage_error_naming_the_rule(tmp_path: Path) -> None:
    proc = await spawn(PYTHON, "-m", "labchat.client", "127.0.0.1", "9", "0", "--plain", "--user", "ana",
                       "--room", "cs101", "--room", "Lab B!", env=env_for(tmp_path))  # fmt: skip
    assert await proc.wait(15) == 2
    err = (await proc.stderr()).strip()
    assert err == (
        "labchat: invalid room name 'Lab B!': room names are 1-32 characters: lowercase letters (a-z), "
        "digits, '_' or '-', starting with a letter or digit"
    )
    assert proc.lines == []
