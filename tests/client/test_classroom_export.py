"""`/export`: a room's transcript as a client sees it (docs/protocol.md 20.6), pure parts and against a
real server: the session's messages, a line to the operators in quiet mode, a poll and the help
queue's log, written to Markdown and HTML."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from labchat.client.core import ChatClient
from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.server.relay import RelayConfig
from labchat.server.transport import RelayServer

from ..helpers import ClientUnderTest

pytest.importorskip(
    "labchat.transcript", reason="the transcript writer (labchat/transcript.py) is not here yet"
)

from labchat.client import export

T0 = 1_764_662_400.0  # 2025-12-02 08:00 UTC


def hand(
    action: int, ts: float, actor: str = "teacher", target: str = "budi", value: str = ""
) -> ev.RoomEvent:
    return ev.RoomEvent("cs101", ts, action, actor, target, 1, value, "")


def test_the_help_queues_log_from_its_news() -> None:
    news = (
        hand(m.Action.HAND_RAISED, T0, "budi", value="segfault"),
        hand(m.Action.HAND_RAISED, T0 + 5, "ani", "ani"),
        hand(m.Action.HAND_RAISED, T0 + 10, "budi", value="segfault in ex. 2"),  # a new question
        hand(m.Action.HAND_TAKEN, T0 + 60),
        hand(m.Action.HAND_LOWERED, T0 + 300),
        hand(m.Action.HAND_RAISED, T0 + 400, "budi", value="again"),
    )
    log = export.hand_log(news, {"budi": "PC-14"})
    assert [(h.user, h.seat, h.question) for h in log] == [
        ("budi", "PC-14", "segfault in ex. 2"), ("ani", "", ""), ("budi", "PC-14", "again"),
    ]  # fmt: skip
    first = log[0]
    assert (first.taken_by, first.taken_ms, first.done_ms, first.done_by) == (
        "teacher", int((T0 + 60) * 1000), int((T0 + 300) * 1000), "teacher",
    )  # fmt: skip
    assert log[1].done_ms == 0 and log[2].done_ms == 0


def test_paths(tmp_path: Path) -> None:
    assert export.base_path(None, "cs101", T0) == Path("cs101-2025-12-02")
    assert export.base_path(str(tmp_path / "lab3.md"), "cs101", T0) == tmp_path / "lab3"
    assert export.base_path("~/lab3", "cs101", T0) == Path.home() / "lab3"


def test_messages_are_in_the_span_each_once() -> None:
    msgs = [
        ev.MessageReceived("cs101", seq, T0 + seq, "budi", f"m{seq}", history=True) for seq in (3, 1, 2, 3)
    ]
    t = export.build(
        "cs101", T0 + 2, T0 + 100, topic="Lab 3", messages=msgs,
        to_ops=[export.ToOps(T0 + 2.5, "budi", "can I go out?")], polls=[], hands=(),
    )  # fmt: skip
    assert [(s.text, s.to_ops) for s in t.messages] == [("m2", False), ("can I go out?", True), ("m3", False)]


pytestmark_server = pytest.mark.skipif(
    not RelayConfig().capabilities & m.CAP_CLASSROOM, reason="this relay has no classroom (protocol 20) yet"
)


async def in_class(server: RelayServer, user: str, tmp_path: Path) -> ClientUnderTest:
    host, port = server.address
    client = ChatClient(
        host, port, user, "secret", known_servers=KnownServers(tmp_path / f"k-{user}"), rooms=("cs101",),
        seat=f"PC-{user}",
    )  # fmt: skip
    cut = await ClientUnderTest(client).start()
    await asyncio.wait_for(client.ready.wait(), 10)
    return cut


@pytestmark_server
async def test_an_operator_exports_the_session(server: RelayServer, tmp_path: Path) -> None:
    teacher = await in_class(server, "teacher", tmp_path)
    budi = await in_class(server, "budi", tmp_path)
    budi.client.submit("before the session")
    await budi.wait_for(ev.MessageDelivered, lambda e: e.text == "before the session")
    teacher.client.submit("/session start")
    await budi.wait_for(ev.RoomEvent, lambda e: e.action == m.Action.SESSION_STARTED)
    await teacher.wait_for(ev.RoomEvent, lambda e: e.action == m.Action.SESSION_STARTED)
    budi.client.submit("look:\n```\nint main() { return 1 < 2; }\n```")
    budi.client.submit("/hand segfault")
    await teacher.wait_for(ev.QueueUpdated, lambda e: len(e.entries) == 1)
    teacher.client.submit("/next")
    teacher.client.submit('/poll "Done?" yes | no')
    await budi.wait_for(ev.PollShown)
    budi.client.submit("/vote 1")
    await teacher.wait_for(ev.PollShown, lambda e: e.voters == 1)
    teacher.client.submit("/poll close")
    teacher.client.submit("/done budi")
    await teacher.wait_for(ev.RoomEvent, lambda e: e.action == m.Action.HAND_LOWERED)
    teacher.client.submit("/quiet on 5")
    await budi.wait_for(ev.RoomState, lambda e: e.quiet_until is not None)
    budi.client.submit("can I go out?")
    await teacher.wait_for(ev.PrivateReceived, lambda e: e.to_ops)

    answer = teacher.client.submit(f"/export {tmp_path / 'lab3.md'}")
    assert not answer.error and "lab3.md" in answer.local_lines[0]
    done = await teacher.wait_for(
        ev.ServerNotice, lambda e: "transcript of #cs101 written" in e.text, timeout=20
    )
    assert done.local
    md = (tmp_path / "lab3.md").read_text()
    page = (tmp_path / "lab3.html").read_text()
    assert "before the session" not in md
    assert "int main() { return 1 < 2; }" in md and "1 &lt; 2" in page
    assert "can I go out?" in md and "(to the operators)" in md
    assert "Done?" in md and "budi" in md and "PC-budi" in md
    # The export's history pages never reach the UI as a /history answer.
    assert not teacher.of(ev.HistoryPage)
    for c in (teacher, budi):
        await c.close()


@pytestmark_server
async def test_an_export_to_a_place_that_cannot_be_written_says_why(
    server: RelayServer, tmp_path: Path
) -> None:
    budi = await in_class(server, "budi", tmp_path)
    budi.client.submit(f"/export {tmp_path / 'no' / 'such' / 'dir' / 'x'}")
    failed = await budi.wait_for(ev.ServerNotice, lambda e: e.text.startswith("cannot export #cs101"))
    assert "\n" not in failed.text
    await budi.close()
