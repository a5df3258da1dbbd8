"""Rooms and roles in the relay (docs/protocol.md 18), driven in-process with raw peers that speak the
wire protocol as an independent CAP_ROOMS client would (and a version-1 one beside them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from labchat.protocol import messages as m
from labchat.protocol.errors import ErrorCode
from labchat.protocol.wire import decode_message, encode_message
from labchat.server.relay import RelayConfig

from ..protocol.sim import SimNet
from .test_relay import RawPeer

ROOMS = m.CAP_LONG_MESSAGES | m.CAP_ROOMS


class Peer(RawPeer):
    """A raw peer with a name, that logs in and sends section-18 requests. Every peer of one net
    pumps for all of them: the relay's output for the others is delivered, not dropped."""

    _port = 7000

    def __init__(self, net: SimNet, user: str, *, flags: int = ROOMS, room: str = "lobby",
                 cursors: tuple[tuple[str, int], ...] = (), resume_seq: int = 0,
                 password: str = "secret", ticket: str = "", seat: str = "") -> None:  # fmt: skip
        Peer._port += 1
        super().__init__(net, ("10.9.0.1", Peer._port))
        self.user = user
        self.next_id = 0
        self.deaf = False  # True: the relay's datagrams to it vanish (a stalled client)
        self.peers: dict[tuple[str, int], Peer] = net.__dict__.setdefault("peers", {})
        self.peers[self.addr] = self
        self.pump()
        self.send(m.Login(user, password, room, resume_seq, flags, ticket, cursors, seat))

    def pump(self) -> None:
        relay = self.net.relay
        assert relay is not None
        for _ in range(200):
            moved = False
            for peer in list(self.peers.values()):
                for d in peer.channel.datagrams_to_send():
                    if not self._lost():
                        relay.receive_datagram(d, peer.addr, self.net.now)
                    moved = True
                if peer.channel.established:
                    for p in peer.link.packets_to_send(self.net.now):
                        sealed = peer.channel.seal(p, self.net.now)
                        if not self._lost():
                            relay.receive_datagram(sealed, peer.addr, self.net.now)
                        moved = True
            for check in relay.password_checks():
                relay.complete_login(check.run(), self.net.now)
                moved = True
            for data, addr in relay.datagrams_to_send(self.net.now):
                peer = self.peers.get(addr)  # type: ignore[call-overload]
                if peer is None or peer.deaf or self._lost():
                    continue
                payload = peer.channel.receive_datagram(data, self.net.now)
                if payload is not None:
                    frames = peer.link.receive_packet(payload, self.net.now)
                    peer.received.extend(f.body for f in frames)
                    peer.messages.extend(decode_message(f.kind, f.body) for f in frames)
                    peer.frames.extend(frames)
                moved = True
            if not moved:
                return

    def _lost(self) -> bool:
        """Whether the path drops this datagram (SimNet's loss rate and random generator)."""
        return self.net.path.loss > 0 and self.net.rng.random() < self.net.path.loss

    def settle(self, done: Callable[[], bool], limit_s: float = 60.0) -> None:
        """Pump and let time pass in small steps (retransmissions on both sides) until `done`."""
        relay = self.net.relay
        assert relay is not None
        end = self.net.now + limit_s
        while not done():
            assert self.net.now < end, "not settled in time"
            self.net.now += 0.05
            relay.handle_timer(self.net.now)
            for peer in self.peers.values():
                peer.link.handle_timer(self.net.now)
                peer.channel.handle_timer(self.net.now)
            self.pump()

    def advance(self, seconds: float) -> None:
        """Move the clock on, running the relay's timers on the way (one step per second); every
        peer keeps alive as a client does, so that none times out."""
        relay = self.net.relay
        assert relay is not None
        end, step = self.net.now + seconds, 0
        while self.net.now < end:
            self.net.now = min(end, self.net.now + 1.0)
            step += 1
            if step % 10 == 0:
                for peer in self.peers.values():
                    peer.link.send(m.Kind.PING, b"")
            relay.handle_timer(self.net.now)
            self.pump()

    def send(self, message: m.Message) -> None:
        self.link.send(message.KIND, encode_message(message))
        self.pump()

    def request(self, make: type[m.Message], *args: object) -> m.RequestDone:
        self.next_id += 1
        start = len(self.messages)
        self.send(make(self.next_id, *args))  # type: ignore[call-arg]
        done = [
            x for x in self.messages[start:] if isinstance(x, m.RequestDone) and x.request_id == self.next_id
        ]
        assert len(done) == 1, self.messages[start:]
        return done[0]

    def of(self, kind: type, since: int = 0) -> list:  # type: ignore[type-arg]
        return [x for x in self.messages[since:] if isinstance(x, kind)]

    def last(self, kind: type):  # type: ignore[no-untyped-def]
        found = self.of(kind)
        assert found, f"{self.user} got no {kind.__name__}"
        return found[-1]


def modes_of(presence: m.Presence) -> dict[str, int]:
    return {u: m.member_mode_bits(c) for u, c in zip(presence.users, presence.modes, strict=True)}


def test_cap_rooms_login_gets_state_presence_with_modes_and_lobby_is_remembered(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    ana = Peer(net, "ana")
    ok = ana.last(m.LoginOk)
    assert ok.flags & m.CAP_ROOMS and ok.room == "lobby"
    kinds = [type(x) for x in ana.messages]
    assert kinds.index(m.LoginOk) < kinds.index(m.RoomState) < kinds.index(m.Presence)
    state = ana.last(m.RoomState)
    assert (state.room, state.members, state.you) == ("lobby", 1, 0)
    presence = ana.last(m.Presence)
    assert presence.users == ("ana",) and presence.modes == "@"
    assert net.relay is not None and net.relay.store.memberships_of("ana") == ["lobby"]


def test_join_creates_a_room_with_its_creator_as_operator_and_messages_stay_in_it(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    ana, budi = Peer(net, "ana"), Peer(net, "budi")
    olga = Peer(net, "olga", flags=m.CAP_LONG_MESSAGES)  # version 1: lobby only, nothing of section 18
    assert not olga.last(m.LoginOk).flags & m.CAP_ROOMS
    assert ana.request(m.JoinRoom, "cs101").code == 0
    state = ana.last(m.RoomState)
    assert state.room == "cs101" and state.you & m.MEMBER_OP and state.modes == m.ROOM_TOPIC_LOCKED
    assert modes_of(ana.last(m.Presence)) == {"ana": m.MEMBER_OP}
    assert budi.request(m.JoinRoom, "#cs101".removeprefix("#")).code == 0
    assert [j.user for j in ana.of(m.Joined) if j.room == "cs101"] == ["budi"]
    assert modes_of(budi.last(m.Presence)) == {"ana": m.MEMBER_OP, "budi": 0}
    assert budi.last(m.RoomState).members == 2
    before = len(olga.messages)
    ana.send(m.Say(1, "cs101", "hello class"))
    ana.send(m.Say(2, "lobby", "hello lobby"))
    assert [x.text for x in budi.of(m.RoomMessage) if x.room == "cs101"] == ["hello class"]
    assert [x.text for x in olga.of(m.RoomMessage, before)] == ["hello lobby"]
    assert not any(isinstance(x, (m.RoomState, m.RoomEvent, m.RoomLeft)) for x in olga.messages)
    assert [a.room for a in ana.of(m.Accepted)] == ["cs101", "lobby"]
    assert net.relay is not None and net.relay.store.memberships_of("budi") == ["lobby", "cs101"]


def test_join_already_in_invalid_name_and_part(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    ana, budi = Peer(net, "ana"), Peer(net, "budi")
    assert ana.request(m.JoinRoom, "lobby").code == 0  # already there: nothing changes
    bad = encode_message(m.JoinRoom(77, "cs101")).replace(b"cs101", b"CS!01")
    ana.link.send(m.Kind.JOIN, bad)
    ana.pump()
    done = ana.last(m.RequestDone)
    assert (done.request_id, done.code) == (77, ErrorCode.INVALID_ROOM) and "lowercase" in done.text
    assert budi.request(m.JoinRoom, "cs101").code == 0
    assert ana.request(m.JoinRoom, "cs101").code == 0
    assert ana.request(m.PartRoom, "cs101", "lunch").code == 0
    assert ana.last(m.RoomLeft) == m.RoomLeft("cs101")
    assert [(x.room, x.user, x.reason) for x in budi.of(m.Left)] == [("cs101", "ana", "left: lunch")]
    assert ana.request(m.PartRoom, "cs101", "").code == ErrorCode.NO_SUCH_ROOM
    before = len(ana.messages)
    budi.send(m.Say(1, "cs101", "after ana left"))
    assert not ana.of(m.RoomMessage, before)
    assert net.relay is not None and net.relay.store.memberships_of("ana") == ["lobby"]


def test_relogin_joins_saved_rooms_in_order_resuming_each_from_its_cursor(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    ana, budi = Peer(net, "ana"), Peer(net, "budi")
    for room in ("cs101", "art"):
        assert ana.request(m.JoinRoom, room).code == 0
        assert budi.request(m.JoinRoom, room).code == 0
    for i in range(1, 6):
        budi.send(m.Say(i, "cs101", f"c{i}"))
        budi.send(m.Say(100 + i, "art", f"a{i}"))
    ana.send(m.Bye())
    again = Peer(net, "ana", cursors=(("cs101", 3), ("art", 5)))
    states = [s.room for s in again.of(m.RoomState)]
    assert states == ["lobby", "cs101", "art"]
    assert again.last(m.LoginOk).room == "lobby"
    live = [(x.room, x.text) for x in again.of(m.RoomMessage) if not x.flags & m.FLAG_HISTORY]
    assert live == [("cs101", "c4"), ("cs101", "c5")]  # art: nothing after 5; lobby: history view
    assert {p.room for p in again.of(m.Presence)} == {"lobby", "cs101", "art"}


def test_list_shows_rooms_by_name_with_their_online_counts(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    ana, budi = Peer(net, "ana"), Peer(net, "budi")
    assert ana.request(m.JoinRoom, "zoo").code == 0
    assert ana.request(m.JoinRoom, "art").code == 0
    assert ana.request(m.SetRoom, "art", m.Setting.TOPIC, "Paint").code == 0
    assert ana.request(m.JoinRoom, "secret").code == 0
    assert ana.request(m.SetRoom, "secret", m.Setting.PRIVATE, "on").code == 0
    start = len(budi.messages)
    assert budi.request(m.ListRooms).code == 0
    infos = budi.of(m.RoomInfo, start)
    listed = [(i.room, i.online, i.topic) for i in infos]
    assert listed == [("art", 1, "Paint"), ("lobby", 2, ""), ("zoo", 1, "")]
    start = len(ana.messages)
    ana.request(m.ListRooms)
    assert [i.room for i in ana.of(m.RoomInfo, start)] == ["art", "lobby", "secret", "zoo"]


def test_a_version_1_login_still_chats_in_lobby_with_cap_rooms_clients(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    ana = Peer(net, "ana")
    olga = Peer(net, "olga", flags=0)
    ok = olga.last(m.LoginOk)
    assert not ok.flags & m.CAP_ROOMS and olga.last(m.Presence).modes == ""
    olga.send(m.Say(1, "lobby", "old but gold"))
    assert [x.text for x in ana.of(m.RoomMessage)] == ["old but gold"]
    ana.send(m.Say(1, "lobby", "welcome"))
    assert [x.text for x in olga.of(m.RoomMessage)] == ["welcome"] and olga.of(m.Accepted)
    assert olga.request(m.JoinRoom, "cs101").code == ErrorCode.PROTOCOL_VIOLATION
    assert net.relay is not None and net.relay.store.memberships_of("olga") == []


def test_two_rooms_through_20_percent_loss_deliver_every_message_once_in_order(tmp_path: Path) -> None:
    net = SimNet(tmp_path, seed=5)
    ana, budi = Peer(net, "ana"), Peer(net, "budi")
    for room in ("cs101", "art"):
        ana.request(m.JoinRoom, room)
        budi.request(m.JoinRoom, room)
    net.path.loss = 0.2
    for i in range(1, 41):
        ana.link.send(m.Kind.SAY, encode_message(m.Say(i, "cs101" if i % 2 else "art", f"m{i}")))
    ana.link.send(m.Kind.ROOM_SET, encode_message(m.SetRoom(99, "art", m.Setting.TOPIC, "Colour")))
    ana.pump()

    def all_there() -> bool:
        received = len(budi.of(m.RoomMessage)) >= 40 and bool(budi.of(m.RoomEvent))
        return received and len(ana.of(m.Accepted)) == 40

    ana.settle(all_there)
    got = [(x.room, x.text) for x in budi.of(m.RoomMessage)]
    assert [t for r, t in got if r == "cs101"] == [f"m{i}" for i in range(1, 41, 2)]
    assert [t for r, t in got if r == "art"] == [f"m{i}" for i in range(2, 41, 2)]
    assert [e.value for e in budi.of(m.RoomEvent)] == ["Colour"]
    for room in ("cs101", "art"):
        seqs = [x.seq for x in budi.of(m.RoomMessage) if x.room == room]
        assert seqs == list(range(1, 21))


def test_away_belongs_to_the_user_in_every_room(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    ana, budi = Peer(net, "ana"), Peer(net, "budi")
    for peer in (ana, budi):
        peer.request(m.JoinRoom, "cs101")
    ana.send(m.SetAway(1, "lunch"))
    assert sorted((a.room, a.user, a.reason) for a in budi.of(m.Away)) == [
        ("cs101", "ana", "lunch"), ("lobby", "ana", "lunch")
    ]
    budi.request(m.JoinRoom, "art")
    start = len(budi.messages)
    ana.request(m.JoinRoom, "art")  # joins a room while away: away there too
    assert not budi.of(m.Away, start)  # news of a join is JOINED; the state shows in the room's listing
    start = len(budi.messages)
    budi.send(m.Who("art"))
    assert [(a.room, a.user, a.listing) for a in budi.of(m.Away, start)] == [("art", "ana", 1)]
    budi.send(m.Whisper(5, "ana", "lunch?"))
    assert budi.last(m.Notice).code == ErrorCode.USER_AWAY
    ana.send(m.SetAway(0, ""))
    assert len([a for a in budi.of(m.Away) if not a.away]) == 3  # back, in lobby, cs101 and art


def test_a_member_comes_back_to_a_room_that_became_private_and_keyed(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    teacher, bob = Peer(net, "teacher"), Peer(net, "bob")
    teacher.request(m.JoinRoom, "cs101")
    bob.request(m.JoinRoom, "cs101")
    bob.send(m.Bye())
    teacher.request(m.SetRoom, "cs101", m.Setting.PRIVATE, "on")
    teacher.request(m.SetRoom, "cs101", m.Setting.KEY, "sesame")
    again = Peer(net, "bob")
    assert [s.room for s in again.of(m.RoomState)] == ["lobby", "cs101"]


def test_a_stalled_member_catches_up_in_each_of_its_rooms_independently(tmp_path: Path) -> None:
    cfg = replace(RelayConfig(), max_backlog_frames=64, rate_per_s=10_000, rate_burst=10_000)
    net = SimNet(tmp_path, relay_config=cfg)
    ana, budi = Peer(net, "ana"), Peer(net, "budi")
    for room in ("cs101", "art"):
        ana.request(m.JoinRoom, room)
        budi.request(m.JoinRoom, room)
    budi.deaf = True
    for i in range(1, 301):
        ana.link.send(m.Kind.SAY, encode_message(m.Say(i, "cs101" if i % 3 else "art", f"m{i}")))
        if i % 20 == 0:
            ana.pump()
    ana.pump()
    assert net.relay is not None
    stalled = next(s for s in net.relay.sessions.values() if s.user == "budi")
    assert stalled.lagging and stalled.link.backlog <= 64 + 8  # bounded, fed from history later
    budi.deaf = False
    ana.settle(lambda: len(budi.of(m.RoomMessage)) >= 300)
    for room, numbers in (("cs101", [i for i in range(1, 301) if i % 3]), ("art", list(range(3, 301, 3)))):
        got = [x for x in budi.of(m.RoomMessage) if x.room == room]
        assert [x.text for x in got] == [f"m{i}" for i in numbers]
        assert [x.seq for x in got] == list(range(1, len(numbers) + 1))
    assert not stalled.lagging


def test_a_join_flood_is_coalesced_into_presence_refreshes_that_carry_modes(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    teacher = Peer(net, "teacher")
    teacher.request(m.JoinRoom, "cs101")
    start = len(teacher.messages)
    for i in range(40):
        Peer(net, f"s{i}").request(m.JoinRoom, "cs101")
    joined = [j for j in teacher.of(m.Joined, start) if j.room == "cs101"]
    assert 0 < len(joined) < 40  # a burst one by one, then the rest wait for a refresh
    teacher.advance(5)
    refresh = [p for p in teacher.of(m.Presence, start) if p.room == "cs101" and not p.requested]
    assert refresh, "no PRESENCE refresh"
    first, second = refresh[-2:]  # 41 names: two parts of at most 40, modes cut along with them
    assert (len(first.users), len(first.modes), first.more) == (40, 40, 1)
    assert modes_of(second) == {"teacher": m.MEMBER_OP} and second.more == 0
