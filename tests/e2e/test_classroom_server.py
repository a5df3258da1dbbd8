"""The classroom server through real processes (docs/protocol.md section 20), beside the client's
tests/e2e/test_classroom.py: a student's /hand reaches the teacher's /queue, a poll's tally (with
its ballots) is right with three voters, and quiet mode refuses a message between classmates while
one to the teacher goes through — with `--json` line-mode clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from labchat.protocol import events as ev

from .procs import Proc, start_client_proc, start_server_proc
from .test_moderation import leave

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not hasattr(ev, "QueueUpdated"),
        reason="the client's classroom commands (protocol 20) are not here yet",
    ),
]


async def lab(tmp_path: Path, *students: str) -> tuple[Proc, Proc, list[Proc]]:
    """A server; `teacher` creates cs101 (its operator), then each student joins from seat PC-<name>."""
    server, port = await start_server_proc(tmp_path)
    teacher = await start_client_proc(
        tmp_path, port, "teacher", "--json", "--room", "cs101", "--seat", "desk"
    )
    await teacher.expect_json(type="room", room="cs101")
    procs = []
    for name in students:
        p = await start_client_proc(tmp_path, port, name, "--json", "--room", "cs101", "--seat", f"PC-{name}")
        await p.expect_json(type="room", room="cs101")
        procs.append(p)
    return server, teacher, procs


async def test_hand_reaches_the_queue_and_a_poll_is_counted(tmp_path: Path) -> None:
    server, teacher, (budi, cid, dewi) = await lab(tmp_path, "budi", "cid", "dewi")

    at = teacher.mark()
    budi.send("/hand segfault in exercise 2")
    news = await budi.expect_json(type="room_event", room="cs101", action="hand_raised")
    assert news["target"] == "budi" and news["minutes"] == 1
    queue = await teacher.expect_json(type="queue", room="cs101", since=at)
    assert [(e["user"], e["seat"], e["question"]) for e in queue["entries"]] == [
        ("budi", "PC-budi", "segfault in exercise 2")
    ]
    at = teacher.mark()
    teacher.send("/queue")
    listed = await teacher.expect_json(type="queue", room="cs101", since=at)
    assert [e["user"] for e in listed["entries"]] == ["budi"]
    teacher.send("/next")
    taken = await budi.expect_json(type="room_event", room="cs101", action="hand_taken")
    assert taken["actor"] == "teacher"

    marks = {p: p.mark() for p in (teacher, budi, cid, dewi)}
    teacher.send('/poll "Done with exercise 2?" yes | no | stuck')
    shown = {p: await p.expect_json(type="poll", room="cs101", since=marks[p]) for p in (budi, cid, dewi)}
    poll_id = shown[budi]["id"]
    assert shown[cid]["options"] == ["yes", "no", "stuck"] and shown[cid]["counts"] == []
    for p, choice in ((budi, 1), (cid, 3), (dewi, 1)):
        p.send(f"/vote {choice}")
    tally = await teacher.expect_json(type="poll", room="cs101", id=poll_id, voters=3, since=marks[teacher])
    assert tally["counts"] == [2, 0, 1]
    assert sorted((b["choice"], b["user"]) for b in tally["ballots"]) == [
        (1, "budi"),
        (1, "dewi"),
        (3, "cid"),
    ]
    at = cid.mark()
    teacher.send("/poll close")
    final = await cid.expect_json(type="poll", room="cs101", id=poll_id, closed=True, since=at)
    assert final["counts"] == [2, 0, 1] and final["voters"] == 3 and final["your_choice"] == 3
    await leave(teacher, budi, cid, dewi)
    await server.kill()


async def test_quiet_mode_lets_a_student_reach_the_teacher_only(tmp_path: Path) -> None:
    server, teacher, (budi, cid) = await lab(tmp_path, "budi", "cid")
    marks = {p: p.mark() for p in (teacher, budi, cid)}
    teacher.send("/quiet on 10")
    for p in (budi, cid):
        news = await p.expect_json(type="room_event", room="cs101", action="quiet", since=marks[p])
        assert news["value"] == "on" and news["minutes"] == 10
    at = budi.mark()
    budi.send("/msg cid what did you get for 3b?")
    refused = await budi.expect_json(type="error", since=at)
    assert "quiet mode in cs101" in refused["text"]
    at, cid_at = teacher.mark(), cid.mark()
    budi.send("is 3b about pointers?")
    to_ops = await teacher.expect_json(type="private", to_ops=True, since=at)
    assert to_ops["text"] == "is 3b about pointers?"
    budi.send("/msg teacher may I go out?")
    await teacher.expect_json(type="private", text="may I go out?", since=at)
    assert not [line for line in cid.lines[cid_at:] if "pointers" in line or "3b" in line]
    await leave(teacher, budi, cid)
    await server.kill()
