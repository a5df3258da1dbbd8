"""A client written to the version-1 protocol keeps working in `lobby` on a server with rooms
(docs/protocol.md 18.12): its LOGIN ends after `resume_seq`, it never receives a message of
section 18, and a room's news reaches it in words it already understands."""

from __future__ import annotations

from pathlib import Path

import pytest

from labchat.client.core import ChatClient
from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.client import ClientConfig
from labchat.protocol.errors import ErrorCode
from labchat.protocol.wire import encode_message
from labchat.server.transport import RelayServer

from ..helpers import ClientUnderTest, connect, start_server

pytestmark = pytest.mark.timeout(30)

#: Kinds a version-1 client has never heard of (docs/protocol.md 6.3: 57-62).
ROOM_KINDS = {m.Kind.ROOM_STATE, m.Kind.ROOM_LEFT, m.Kind.ROOM_INFO, m.Kind.ROOM_EVENT, m.Kind.ANNOUNCEMENT,
              m.Kind.ANNOUNCEMENT_TALLY}  # fmt: skip


async def version1(server: RelayServer, user: str, tmp_path: Path) -> tuple[ClientUnderTest, list[m.Message]]:
    """Our client, made to speak version 1 exactly: no capabilities, and a LOGIN body cut after
    `resume_seq`, byte for byte what a first-version client sends. Returns it, logged in, and every
    message it has received."""
    host, port = server.address
    client = ChatClient(host, port, user, "secret", known_servers=KnownServers(tmp_path / f"known-{user}"),
                        config=ClientConfig(capabilities=0))  # fmt: skip
    conn = client.conn
    received: list[m.Message] = []
    send, handle = conn._send, conn._handle

    def send_v1(message: m.Message) -> None:
        if isinstance(message, m.Login):
            body = encode_message(m.Login(message.user, message.password, message.room, message.resume_seq))
            appended = 4 + 2 + 2 + 2  # flags U32, ticket STR, cursors CURSORS, seat STR: all empty
            conn._link.send(m.Kind.LOGIN, body[:-appended])
            return
        send(message)

    def record(message: m.Message, now: float) -> None:
        received.append(message)
        handle(message, now)

    conn._send = send_v1  # type: ignore[method-assign]
    conn._handle = record  # type: ignore[method-assign]
    cut = await ClientUnderTest(client).start()
    await cut.wait_for(ev.LoggedIn)
    return cut, received


async def test_a_version1_client_chats_in_lobby_beside_room_clients(tmp_path: Path) -> None:
    server = await start_server(tmp_path)
    try:
        old, received = await version1(server, "oldie", tmp_path)
        new = await connect(server, "newbie", tmp_path=tmp_path)
        assert (await new.wait_for(ev.LoggedIn)).rooms
        new.client.submit("/join cs101")
        await new.wait_for(ev.RoomState, lambda e: e.room == "cs101")
        new.client.submit("/say cs101 only for cs101")
        new.client.submit("/say lobby hello lobby")
        got = await old.wait_for(ev.MessageReceived, lambda e: e.text == "hello lobby")
        assert got.room == "lobby"
        old.client.submit("hi from version 1")
        await new.wait_for(ev.MessageReceived, lambda e: e.text == "hi from version 1" and e.room == "lobby")
        assert not [e for e in old.of(ev.MessageReceived) if e.text == "only for cs101"]
        assert not [msg for msg in received if msg.KIND in ROOM_KINDS]
        assert all(msg.modes == "" for msg in received if isinstance(msg, m.Presence))
        await old.close()
        await new.close()
    finally:
        await server.stop()


async def test_a_version1_client_hears_moderation_in_words_and_a_kick_closes_it(tmp_path: Path) -> None:
    server = await start_server(tmp_path)
    try:
        op = await connect(server, "opal", tmp_path=tmp_path)
        server.relay.store.set_admin("opal", True)
        await op.close()
        op = await connect(server, "opal", tmp_path=tmp_path)  # admin from this login on
        old, received = await version1(server, "oldie", tmp_path)
        op.client.set_current_room("lobby")
        op.client.submit("/mute oldie 5 calm down")
        notice = await old.wait_for(ev.ServerNotice, lambda e: e.code == ErrorCode.ROOM_NEWS)
        assert "muted" in notice.text
        old.client.submit("am I muted?")
        failed = await old.wait_for(ev.MessageFailed)
        assert "muted" in failed.reason
        op.client.submit("/kick oldie bye")
        closed = await old.wait_for(ev.Closed)
        assert closed.code == ErrorCode.KICKED
        assert not [msg for msg in received if msg.KIND in ROOM_KINDS]
        await op.close()
    finally:
        await server.stop()
