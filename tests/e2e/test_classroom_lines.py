"""A class as line-mode clients meet it (docs/protocol.md 20), all processes: `--seat`, a student's
/hand in the teacher's /queue, a poll's tally with three voters, and quiet mode refusing a
classmate-to-classmate message while a room line reaches the teacher only."""

from __future__ import annotations

from pathlib import Path

import pytest

from labchat.protocol import messages as m
from labchat.protocol.errors import ErrorCode
from labchat.server.relay import RelayConfig

from .procs import Proc, start_client_proc, start_server_proc

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not RelayConfig().capabilities & m.CAP_CLASSROOM,
        reason="this relay has no classroom (protocol 20) yet",
    ),
]


async def seated(tmp_path: Path, port: int, user: str, seat: str, *mode: str) -> Proc:
    """`labchat ... --room cs101 --seat SEAT` (the first one in cs101 creates it: its operator)."""
    proc = await start_client_proc(
        tmp_path, port, user, *(mode or ("--json",)), "--room", "cs101", "--seat", seat
    )
    if mode == ("--plain",):
        await proc.expect(r"you joined #cs101")
    else:
        await proc.expect_json(type="room", room="cs101")
    return proc


async def leave(*procs: Proc) -> None:
    for p in procs:
        p.send("QUIT")
    for p in procs:
        assert await p.wait(15) == 0


async def test_hand_queue_poll_and_quiet_mode(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path)
    teacher = await seated(tmp_path, port, "teacher", "T-1")
    budi = await seated(tmp_path, port, "budi", "PC-14")
    ani = await seated(tmp_path, port, "ani", "PC-3")
    eko = await seated(tmp_path, port, "eko", "PC-7")

    teacher.send("/who")
    who = await teacher.expect_json(type="presence", room="cs101", ref=1)
    assert who["seats"] == {"teacher": "T-1", "budi": "PC-14", "ani": "PC-3", "eko": "PC-7"}

    # The help queue.
    at = teacher.mark()
    budi.send("/hand segfault in exercise 2")
    mine = await budi.expect_json(type="room_event", action="hand_raised", room="cs101")
    assert mine["text"] == "you are 1st in the queue"
    queue = await teacher.expect_json(type="queue", room="cs101", since=at)
    assert [e["user"] for e in queue["entries"]] == ["budi"]
    at = teacher.mark()
    teacher.send("/queue")
    listed = await teacher.expect_json(type="queue", room="cs101", ref=2, since=at)
    [entry] = listed["entries"]
    assert (entry["user"], entry["seat"], entry["question"], entry["taken_by"]) == (
        "budi", "PC-14", "segfault in exercise 2", None,
    )  # fmt: skip
    teacher.send("/next")
    coming = await budi.expect_json(type="room_event", action="hand_taken")
    assert coming["text"] == "coming: teacher"

    # A poll with three voters: the tally is right, and everyone sees it once closed.
    teacher.send('/poll "Done with exercise 2?" yes | no | stuck')
    for student in (budi, ani, eko):
        shown = await student.expect_json(type="poll", room="cs101", closed=False)
        assert shown["options"] == ["yes", "no", "stuck"] and shown["counts"] == []
    for student, choice in ((budi, 1), (ani, 1), (eko, 3)):
        student.send(f"/vote {choice}")
        await student.expect_json(type="poll", your_choice=choice)
    tally = await teacher.expect_json(type="poll", room="cs101", voters=3)
    assert (
        tally["counts"] == [2, 0, 1]
        and tally["text"] == f"poll #{tally['id']}: yes 2, no 0, stuck 1 (3 voted)"
    )
    teacher.send("/poll close")
    for student in (budi, ani, eko):
        closed = await student.expect_json(type="poll", closed=True)
        assert closed["counts"] == [2, 0, 1] and closed["voters"] == 3

    # Quiet mode: a classmate-to-classmate message is refused; a room line reaches the teacher only.
    at = ani.mark()
    teacher.send("/quiet on 5")
    on = await ani.expect_json(type="room_event", action="quiet", value="on", since=at)
    assert on["minutes"] == 5 and on["actor"] == "teacher"
    state = await ani.expect_json(type="room", room="cs101", joined=False, since=at)
    assert "quiet" in state["modes"]
    assert state["quiet_until"] is not None
    budi.send("/msg ani psst")
    refused = await budi.expect_json(type="error", code=ErrorCode.QUIET)
    assert "quiet mode in cs101" in refused["text"]
    budi.send("can I go out?")
    said = await budi.expect_json(type="message", text="can I go out?")
    assert said["seq"] == 0 and said["to_ops"] is True
    got = await teacher.expect_json(type="private", text="can I go out?")
    assert (got["user"], got["to"], got["to_ops"]) == ("budi", "cs101", True)
    teacher.send("/quiet off")
    await ani.expect_json(type="room_event", action="quiet", value="off")
    ani.send("free again")
    await eko.expect_json(type="message", text="free again", user="ani")
    assert not [e for e in ani.events("message") + eko.events("message") if e["text"] == "can I go out?"]
    assert not ani.events("private")
    await leave(teacher, budi, ani, eko)
    await server.kill()


async def test_the_queue_and_a_tally_in_plain_lines(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path)
    teacher = await seated(tmp_path, port, "teacher", "T-1", "--plain")
    budi = await seated(tmp_path, port, "budi", "PC-14", "--plain")
    budi.send("/hand segfault in exercise 2")
    await budi.expect(r"-!- you are 1st in the queue$")
    await teacher.expect(r"-!- budi raised a hand \(1st in the queue\): segfault in exercise 2$")
    teacher.send("/queue")
    await teacher.expect(r"-!- 1\. budi \(PC-14, waiting <1 min\): segfault in exercise 2$")
    teacher.send('/poll "Done?" yes | no')
    await budi.expect(r"-!- poll #\d+ by teacher: Done\?  1\) yes  2\) no  — /vote N$")
    budi.send("/vote 2")
    await teacher.expect(r"-!- poll #\d+: yes 0, no 1 \(1 voted\)$")
    await leave(teacher, budi)
    await server.kill()
