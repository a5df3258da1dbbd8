"""A real server and real clients over UDP on 127.0.0.1: the core chat flows."""

from __future__ import annotations

from pathlib import Path

from labchat.protocol import events as ev
from labchat.protocol.errors import ErrorCode
from labchat.server.transport import RelayServer

from ..helpers import connect


async def test_join_relay_private_and_leave(server: RelayServer, tmp_path: Path) -> None:
    alice = await connect(server, "alice", tmp_path=tmp_path)
    bob = await connect(server, "bob", tmp_path=tmp_path)
    carol = await connect(server, "carol", tmp_path=tmp_path)
    await alice.wait_for(ev.UserJoined, lambda e: e.user == "carol")
    presence = await carol.wait_for(ev.PresenceUpdated)
    assert presence.users == ("alice", "bob", "carol")

    alice.client.submit("hello everyone 👋")
    delivered = await alice.wait_for(ev.MessageDelivered)
    for other in (bob, carol):
        got = await other.wait_for(ev.MessageReceived)
        assert (got.user, got.text, got.seq) == ("alice", "hello everyone 👋", delivered.seq)
    assert not alice.of(ev.MessageReceived)  # the sender gets a confirmation, not a copy

    bob.client.submit("/msg alice just you")
    private = await alice.wait_for(ev.PrivateReceived)
    assert (private.sender, private.text) == ("bob", "just you")
    await bob.wait_for(ev.MessageDelivered, lambda e: e.to == "alice")

    carol.client.submit("QUIT")
    await carol.client.closed.wait()
    left = await alice.wait_for(ev.UserLeft)
    assert (left.user, left.reason) == ("carol", "quit")
    assert not carol.of(ev.PrivateReceived)
    for c in (alice, bob):
        await c.close()


async def test_wrong_password_is_refused(server: RelayServer, tmp_path: Path) -> None:
    alice = await connect(server, "alice", "right", tmp_path=tmp_path)
    await alice.close()
    again = await connect(server, "Alice", "wrong", tmp_path=tmp_path, login=False)
    refused = await again.wait_for(ev.LoginRefused)
    assert refused.code == ErrorCode.INVALID_PASSWORD
    assert refused.reason == "Invalid password"
    await again.client.closed.wait()


async def test_names_are_unique_regardless_of_case(server: RelayServer, tmp_path: Path) -> None:
    first = await connect(server, "Dewi", tmp_path=tmp_path)
    second = await connect(server, "dewi", tmp_path=tmp_path)
    assert (await second.wait_for(ev.LoggedIn)).user == "Dewi"
    # One live session per name: the old one is told why.
    closed = await first.wait_for(ev.Closed)
    assert closed.code == ErrorCode.REPLACED
    await second.close()


async def test_newcomer_sees_history(server: RelayServer, tmp_path: Path) -> None:
    alice = await connect(server, "alice", tmp_path=tmp_path)
    for i in range(3):
        alice.client.submit(f"line {i}")
    await alice.wait_for(ev.MessageDelivered, lambda e: e.text == "line 2")
    bob = await connect(server, "bob", tmp_path=tmp_path)
    got = await bob.wait_for(ev.MessageReceived, lambda e: e.text == "line 2")
    assert got.history
    assert [e.text for e in bob.of(ev.MessageReceived)] == ["line 0", "line 1", "line 2"]
    await alice.close()
    await bob.close()


async def test_long_text_arrives_as_one_message(server: RelayServer, tmp_path: Path) -> None:
    # Over 900 bytes: one message in parts (docs/protocol.md section 15), no longer split in several.
    alice = await connect(server, "alice", tmp_path=tmp_path)
    bob = await connect(server, "bob", tmp_path=tmp_path)
    text = " ".join(f"word{i}" for i in range(400))
    alice.client.submit(text)
    await bob.wait_for(ev.MessageReceived, lambda e: e.text.endswith("word399"))
    pieces = [e.text for e in bob.of(ev.MessageReceived)]
    assert pieces == [text]
    await alice.close()
    await bob.close()
