"""A scripted server for client state-machine tests: the real secure channel and reliable link on the
server side, but no relay. The test reads the messages the client sent and writes the server's answers
itself, so a client can be tested against exactly what docs/protocol.md says a server sends, before
(or without) a server that does it. Time is a float the test moves by hand.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.channel import Address, ServerChannel
from labchat.protocol.client import ClientConfig, ClientConnection
from labchat.protocol.errors import ErrorCode
from labchat.protocol.reliability import ReliableLink
from labchat.protocol.wire import decode_message, encode_message

SERVER_KEY = bytes(range(1, 33))
CLIENT_ADDR: Address = ("10.0.0.2", 5000)


@dataclass
class ScriptedServer:
    """One client and a server whose every answer the test writes (`send`)."""

    conn: ClientConnection
    now: float = 1_700_000_000.0
    channel: ServerChannel = field(init=False)
    links: dict[bytes, ReliableLink] = field(default_factory=dict)
    session: bytes | None = None
    #: Every message the client sent, in order, across sessions.
    received: list[m.Message] = field(default_factory=list)
    #: Every event the client reported, in order.
    seen: list[ev.Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.channel = ServerChannel(SERVER_KEY, rng=random.Random(1).randbytes)

    @classmethod
    def start(cls, user: str = "alice", config: ClientConfig | None = None) -> ScriptedServer:
        conn = ClientConnection(user, "secret", config=config, rng=random.Random(2).randbytes)
        server = cls(conn)
        conn.connect(server.now)
        server.exchange()
        return server

    # ------------------------------------------------------------ driving

    def exchange(self) -> None:
        """Deliver datagrams both ways until both sides are quiet (no loss, no delay)."""
        for _ in range(50):
            moved = False
            for data in self.conn.datagrams_to_send(self.now):
                moved = True
                self._receive(data)
            for data in self._datagrams():
                moved = True
                self.conn.receive_datagram(data, self.now)
            self.seen.extend(self.conn.events())
            if not moved:
                return
        raise AssertionError("client and server never went quiet")

    def advance(self, seconds: float) -> None:
        """Move the clock, firing every timer on the way, then exchange."""
        end = self.now + seconds
        while True:
            deadline = self.conn.next_timer()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            self.conn.handle_timer(self.now)
            self.exchange()
        self.now = end
        self.exchange()

    def send(self, *messages: m.Message) -> None:
        """Queue server messages on the current session and deliver them."""
        assert self.session is not None, "no session yet"
        link = self.links[self.session]
        for message in messages:
            link.send(message.KIND, encode_message(message))
        self.exchange()

    def restart(self) -> None:
        """The server announces a shutdown and comes back: the client re-handshakes and logs in."""
        self.send(m.Closed(ErrorCode.SERVER_SHUTDOWN, "restarting"))
        self.session = None
        self.advance(2.0)

    # ------------------------------------------------------------ reading

    def sent(self, kind: type[m.Message]) -> list[m.Message]:
        return [msg for msg in self.received if isinstance(msg, kind)]

    def last(self, kind: type[m.Message]) -> m.Message:
        found = self.sent(kind)
        assert found, f"the client sent no {kind.__name__}"
        return found[-1]

    def events(self, kind: type[ev.Event]) -> list[ev.Event]:
        return [e for e in self.seen if isinstance(e, kind)]

    def take(self) -> list[ev.Event]:
        """The events seen since the last take."""
        out, self.seen = self.seen, []
        return out

    # ------------------------------------------------------------ the server's half

    def _receive(self, data: bytes) -> None:
        got = self.channel.receive_datagram(data, CLIENT_ADDR, self.now)
        if got is None:
            return
        link = self.links.setdefault(got.session_id, ReliableLink())
        self.session = got.session_id
        for frame in link.receive_packet(got.payload, self.now):
            self.received.append(decode_message(frame.kind, frame.body))

    def _datagrams(self) -> list[bytes]:
        out = [data for data, _ in self.channel.datagrams_to_send()]
        for session_id, link in self.links.items():
            if not self.channel.is_open(session_id):
                continue
            for packet in link.packets_to_send(self.now):
                out.append(self.channel.seal(session_id, packet, self.now)[0])
        return out


def logged_in(
    rooms: tuple[str, ...] = ("lobby",),
    *,
    flags: int = m.CAP_ROOMS | m.CAP_LONG_MESSAGES,
    config: ClientConfig | None = None,
) -> ScriptedServer:
    """A client logged in to a server with `flags`; with CAP_ROOMS, in `rooms` (one ROOM_STATE each)."""
    server = ScriptedServer.start(config=config)
    login = server.last(m.Login)
    assert isinstance(login, m.Login)
    server.send(m.LoginOk(login.user, rooms[0], flags=flags), m.Ticket("t" * 20, 3600))
    if flags & m.CAP_ROOMS:
        for room in rooms:
            server.send(m.RoomState(room, members=3), m.Presence(room, ("alice", "bob")))
    return server
