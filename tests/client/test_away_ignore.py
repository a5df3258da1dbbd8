"""Away, held private messages and /ignore through the real client core and a real relay on 127.0.0.1;
the typed commands and the ignore-list file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labchat.client import commands
from labchat.client.core import ChatClient
from labchat.client.ignore_list import IgnoreListError, load_ignored, save_ignored
from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from labchat.protocol.errors import ErrorCode
from labchat.server.transport import RelayServer

from ..helpers import ClientUnderTest, connect


async def test_away_notice_and_held_private_over_real_sockets(server: RelayServer, tmp_path: Path) -> None:
    alice = await connect(server, "alice", tmp_path=tmp_path)
    bob = await connect(server, "bob", tmp_path=tmp_path)
    bob.client.submit("/away lunch")
    news = await alice.wait_for(ev.UserAway)
    assert (news.user, news.away, news.reason) == ("bob", True, "lunch")
    alice.client.submit("/msg bob you there?")
    alice.client.submit("/msg bob hello?")
    notice = await alice.wait_for(ev.ServerNotice, lambda e: e.code == ErrorCode.USER_AWAY)
    assert notice.text == "bob is away: lunch"
    await bob.wait_for(ev.PrivateReceived, lambda e: e.text == "hello?")
    assert len([e for e in alice.of(ev.ServerNotice) if e.code == ErrorCode.USER_AWAY]) == 1
    alice.client.submit("/who")
    listing = await alice.wait_for(ev.PresenceUpdated, lambda e: e.requested)
    assert listing.away == {"bob": "lunch"}
    bob.client.submit("/back")
    await alice.wait_for(ev.UserAway, lambda e: not e.away)
    assert bob.client.submit("/back").local_lines == ("you are not marked as away",)
    bob.client.set_away("idle")  # what an app's idle timer calls
    await alice.wait_for(ev.UserAway, lambda e: e.reason == "idle")
    bob.client.set_away(None)
    await alice.wait_for(ev.UserAway, lambda e: sum(not x.away for x in alice.of(ev.UserAway)) == 2)

    bob.client.submit("QUIT")
    await bob.client.closed.wait()
    alice.client.submit("/msg bob while you were out")
    held = await alice.wait_for(ev.ServerNotice, lambda e: e.code == ErrorCode.RECIPIENT_OFFLINE)
    assert held.text == "bob is offline: will be delivered when bob returns"
    sent = await alice.wait_for(ev.MessageDelivered, lambda e: e.text == "while you were out")
    bob2 = await connect(server, "bob", tmp_path=tmp_path)
    got = await bob2.wait_for(ev.PrivateReceived)
    assert (got.sender, got.text, got.held, got.ts) == ("alice", "while you were out", True, sent.ts)
    presence = bob2.of(ev.PresenceUpdated)[0]
    assert presence.away == {}  # a logout ended bob's away
    for c in (alice, bob2):
        await c.close()


async def test_ignore_is_kept_in_a_file_and_hides_messages(server: RelayServer, tmp_path: Path) -> None:
    path = tmp_path / "config" / "ignored"
    host, port = server.address
    known = KnownServers(tmp_path / "known-alice")
    alice = await ClientUnderTest(
        ChatClient(host, port, "alice", "secret", known_servers=known, ignore_path=path)
    ).start()
    await alice.wait_for(ev.LoggedIn)
    assert alice.client.submit("/ignore Bob").local_lines[0].startswith("ignoring Bob")
    assert load_ignored(path) == ["Bob"]
    assert alice.client.submit("/ignore").local_lines == ("ignoring: Bob",)
    bob = await connect(server, "bob", tmp_path=tmp_path)
    carol = await connect(server, "carol", tmp_path=tmp_path)
    bob.client.submit("buy my stuff")
    bob.client.submit("/msg alice buy it")
    await bob.wait_for(ev.MessageDelivered, lambda e: e.to == "alice")
    carol.client.submit("hi alice")
    got = await alice.wait_for(ev.MessageReceived)
    assert (got.user, got.text) == ("carol", "hi alice")
    assert not alice.of(ev.PrivateReceived)
    await alice.close()

    # The next run reads the file: bob is still ignored.
    again = await ClientUnderTest(
        ChatClient(host, port, "alice", "secret", known_servers=known, ignore_path=path)
    ).start()
    await again.wait_for(ev.LoggedIn)
    assert again.client.conn.ignored == ("Bob",)
    assert again.client.submit("/unignore bob").local_lines == ("no longer ignoring bob",)
    assert load_ignored(path) == []
    assert again.client.submit("/unignore bob").error
    for c in (again, bob, carol):
        await c.close()


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("/away", commands.Away(None)),
        ("/AWAY gone to lunch", commands.Away("gone to lunch")),
        ("/back", commands.Away(None)),
        ("/ignore", commands.Ignore(None)),
        ("/ignore bob", commands.Ignore("bob")),
        ("/ignore bob carol", commands.Invalid("usage: /ignore NAME (one name), or /ignore to list")),
        ("/unignore bob", commands.Unignore("bob")),
        ("/unignore", commands.Invalid("usage: /unignore NAME")),
    ],
)
def test_commands(line: str, parsed: commands.Command) -> None:
    assert commands.parse(line) == parsed


def test_ignore_list_file_is_forgiving_to_read_and_atomic_to_write(tmp_path: Path) -> None:
    path = tmp_path / "ignored"
    assert load_ignored(path) == []
    path.write_text("# people\nbob\n\nBOB\nnot a name\ncarol  \n\xff\n", encoding="utf-8")
    assert load_ignored(path) == ["bob", "carol"]
    save_ignored(path, ["dave", "erin"])
    assert path.read_text() == "dave\nerin\n"
    assert sorted(os.listdir(tmp_path)) == ["ignored"]  # no temporary file left behind


def test_ignore_list_errors_are_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(IgnoreListError, match="cannot write ignore list"):
        save_ignored(blocker / "ignored", ["bob"])
    (tmp_path / "dir").mkdir()
    with pytest.raises(IgnoreListError, match="cannot read ignore list"):
        load_ignored(tmp_path / "dir")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=50)
@given(st.binary(max_size=400))
def test_any_ignore_file_loads_as_valid_names(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "ignored"
    path.write_bytes(data)
    names = load_ignored(path)
    assert all(commands.parse(f"/ignore {n}") == commands.Ignore(n) for n in names)
    save_ignored(path, names)
    assert load_ignored(path) == names
