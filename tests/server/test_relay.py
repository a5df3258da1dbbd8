"""Relay policy on the simulated network: throttling, hostile logged-in peers, stalled clients."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.channel import ClientChannel
from labchat.protocol.congestion import CongestionConfig
from labchat.protocol.errors import ErrorCode
from labchat.protocol.reliability import LinkConfig, ReliableLink
from labchat.protocol.wire import Frame, decode_message, encode_message
from labchat.server.relay import RelayConfig

from ..protocol.sim import SimNet


def test_failed_logins_are_throttled_after_the_name_budget(tmp_path: Path) -> None:
    """Nine guesses at once: five are checked, three wait for the budget (and are told so), and
    the ninth, which would wait 40 s, is refused with the wait in whole seconds."""
    net = SimNet(tmp_path)
    net.add_client("ana", "right")
    net.run_until(lambda: net.logged_in("ana"))
    started = net.now
    wrongs = [net.add_client("ana", "wrong") for _ in range(9)]
    net.run_until(lambda: all(w.of(ev.LoginRefused) for w in wrongs[:5] + wrongs[8:]), limit_s=5)
    assert [w.of(ev.LoginRefused)[0].code for w in wrongs[:5]] == [ErrorCode.INVALID_PASSWORD] * 5
    refused = wrongs[8].of(ev.LoginRefused)[0]
    assert refused.code == ErrorCode.LOGIN_THROTTLED
    assert refused.reason.startswith("too many failed logins for ana: try again in ")
    assert not refused.reason.endswith(" 0 s")
    assert all(w.of(ev.LoginQueued) and not w.of(ev.LoginRefused) for w in wrongs[5:8])
    net.run_until(lambda: all(w.of(ev.LoginRefused) for w in wrongs), limit_s=60)
    assert [w.of(ev.LoginRefused)[0].code for w in wrongs[5:8]] == [ErrorCode.INVALID_PASSWORD] * 3
    assert net.now - started >= 30  # one every 10 s: they waited for the budget, not the clock
    assert not any(w.of(ev.LoggedIn) or w.of(ev.ConnectFailed) for w in wrongs)


def test_new_password_too_short(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    c = net.add_client("ana", "ab")
    net.run_until(lambda: bool(c.of(ev.LoginRefused)))
    assert "at least 4 characters" in c.of(ev.LoginRefused)[0].reason


def test_registration_closed(tmp_path: Path) -> None:
    net = SimNet(tmp_path, relay_config=replace(RelayConfig(), registration_open=False))
    c = net.add_client("ana")
    net.run_until(lambda: bool(c.of(ev.LoginRefused)))
    assert c.of(ev.LoginRefused)[0].code == ErrorCode.REGISTRATION_CLOSED


class RawPeer:
    """A logged-in attacker: a real channel and link, sending whatever frames it likes."""

    def __init__(self, net: SimNet, addr: tuple[str, int]) -> None:
        assert net.relay is not None
        self.net, self.addr = net, addr
        self.channel = ClientChannel(None)
        # `pump` never moves the clock, so a pacer would never refill: this peer sends as fast as it
        # likes (a hostile peer would not pace anyway), up to a window far above what the tests send.
        unpaced = CongestionConfig(initial_window_packets=1000, pacing_burst_packets=1000)
        self.link = ReliableLink(LinkConfig(congestion=unpaced))
        self.channel.start(net.now)
        self.received: list[bytes] = []
        self.messages: list[m.Message] = []
        self.frames: list[Frame] = []  # the same, with their kinds

    def pump(self) -> None:
        relay = self.net.relay
        assert relay is not None
        for _ in range(50):
            moved = False
            for d in self.channel.datagrams_to_send():
                relay.receive_datagram(d, self.addr, self.net.now)
                moved = True
            if self.channel.established:
                for p in self.link.packets_to_send(self.net.now):
                    relay.receive_datagram(self.channel.seal(p, self.net.now), self.addr, self.net.now)
                    moved = True
            for check in relay.password_checks():
                relay.complete_login(check.run(), self.net.now)
            for data, addr in relay.datagrams_to_send(self.net.now):
                if addr == self.addr:
                    payload = self.channel.receive_datagram(data, self.net.now)
                    if payload is not None:
                        frames = self.link.receive_packet(payload, self.net.now)
                        self.received.extend(f.body for f in frames)
                        self.messages.extend(decode_message(f.kind, f.body) for f in frames)
                        self.frames.extend(frames)
                    moved = True
            if not moved:
                return


def test_hostile_logged_in_peer_cannot_crash_the_relay(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    ana = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    peer = RawPeer(net, ("10.6.6.6", 666))
    peer.pump()
    peer.link.send(m.Kind.LOGIN, encode_message(m.Login("mallory", "secret")))
    peer.pump()
    rng = random.Random(3)
    for i in range(400):
        kind = rng.choice([*range(0, 70), m.Kind.SAY, m.Kind.LOGIN, m.Kind.WHISPER])
        body = rng.randbytes(rng.randrange(0, 200))
        if i % 5 == 0:  # plausible frames with hostile values
            good = encode_message(m.Say(i + 1, "lobby", "x" * rng.randrange(1, 50)))
            body = bytearray(good)
            body[rng.randrange(len(body))] = rng.randrange(256)
            body = bytes(body)
        peer.link.send(kind, body)
        if i % 50 == 0:
            peer.pump()
    peer.pump()
    # Server-to-client kinds from a client, a second LOGIN, junk: all dropped; the room still works.
    ana.conn.say("room still works", net.now)
    net.run_until(lambda: bool(ana.of(ev.MessageDelivered)))
    assert net.relay is not None and net.relay.stats.bad_messages > 0


def test_invalid_name_from_a_third_party_client_gets_the_rule(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    peer = RawPeer(net, ("10.6.6.7", 667))
    peer.pump()
    body = encode_message(m.Login("alice", "secret")).replace(b"alice", b"9lice")
    peer.link.send(m.Kind.LOGIN, body)
    peer.pump()
    replies = [decode_message(m.Kind.LOGIN_FAILED, b) for b in peer.received]
    assert replies and replies[0].code == ErrorCode.INVALID_NAME  # type: ignore[attr-defined]
    assert "starting with a letter" in replies[0].text  # type: ignore[attr-defined]


def test_stalled_client_does_not_hold_others_back_and_catches_up(tmp_path: Path) -> None:
    cfg = replace(RelayConfig(), max_backlog_frames=64, rate_per_s=10_000, rate_burst=10_000)
    net = SimNet(tmp_path, relay_config=cfg)
    ana, budi, citra = net.add_client("ana"), net.add_client("budi"), net.add_client("citra")
    net.run_until(lambda: net.logged_in("ana", "budi", "citra"))
    citra.online = False  # stalled: receives nothing for a while (but less than the timeout)
    for i in range(500):
        ana.conn.say(f"x{i}", net.now)
    net.run_until(lambda: len(budi.of(ev.MessageReceived)) == 500)
    assert net.relay is not None
    stalled = next(s for s in net.relay.sessions.values() if s.user == "citra")
    assert stalled.link.backlog <= 64 + 8  # bounded while stalled
    citra.online = True
    net.run_until(lambda: len(citra.of(ev.MessageReceived)) == 500, limit_s=60)
    assert [e.text for e in citra.of(ev.MessageReceived)] == [f"x{i}" for i in range(500)]


def test_login_to_an_unknown_room_is_refused(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    peer = RawPeer(net, ("10.6.6.8", 668))
    peer.pump()
    peer.link.send(m.Kind.LOGIN, encode_message(m.Login("alice", "secret", "another-room")))
    peer.pump()
    (reply,) = [decode_message(m.Kind.LOGIN_FAILED, b) for b in peer.received]
    assert reply.code == ErrorCode.NO_SUCH_ROOM  # type: ignore[attr-defined]
    assert net.relay is not None and list(net.relay.rooms) == ["lobby"]


def test_long_non_ascii_invalid_name_gets_a_short_answer(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    peer = RawPeer(net, ("10.6.6.9", 669))
    peer.pump()
    good = encode_message(m.Login("a", "secret"))
    name = ("é" * 400).encode()
    body = len(name).to_bytes(2, "big") + name + good[3:]
    peer.link.send(m.Kind.LOGIN, body)
    peer.pump()
    (reply,) = [decode_message(m.Kind.LOGIN_FAILED, b) for b in peer.received]
    assert reply.code == ErrorCode.INVALID_NAME  # type: ignore[attr-defined]
    assert len(reply.text.encode()) <= m.MAX_NOTICE_BYTES  # type: ignore[attr-defined]


def test_resent_private_message_is_relayed_once(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    budi = net.add_client("budi")
    net.run_until(lambda: net.logged_in("budi"))
    peer = RawPeer(net, ("10.6.6.10", 670))
    peer.pump()
    peer.link.send(m.Kind.LOGIN, encode_message(m.Login("ana", "secret")))
    peer.pump()
    whisper = encode_message(m.Whisper(77, "budi", "once"))
    peer.link.send(m.Kind.WHISPER, whisper)
    peer.link.send(m.Kind.WHISPER, whisper)  # a resend after a reconnect carries the same id
    peer.pump()
    net.run_for(1.0)
    assert [e.text for e in budi.of(ev.PrivateReceived)] == ["once"]


def test_who_in_a_loop_is_rate_limited(tmp_path: Path) -> None:
    net = SimNet(tmp_path, relay_config=replace(RelayConfig(), rate_per_s=10, rate_burst=20))
    peer = RawPeer(net, ("10.6.6.11", 671))
    peer.pump()
    peer.link.send(m.Kind.LOGIN, encode_message(m.Login("ana", "secret")))
    peer.pump()
    before = len(peer.received)
    for _ in range(500):
        peer.link.send(m.Kind.WHO, encode_message(m.Who()))
    peer.pump()
    answers = len(peer.received) - before
    assert 0 < answers <= 25  # the burst, not five hundred answers


def test_the_timer_heap_stays_proportional_to_the_sessions(tmp_path: Path) -> None:
    """Every keepalive and ACK moves a session's deadline; the entries left behind are compacted."""
    net = SimNet(tmp_path)
    for i in range(5):
        net.add_client(f"idle{i}", "secret")
    net.run_until(lambda: net.logged_in(*(f"idle{i}" for i in range(5))))
    talker = net.clients["idle0"].conn
    for i in range(300):
        talker.say(f"line {i}", net.now)
        net.run_for(0.05)
    relay = net.relay
    assert relay is not None
    assert len(relay._timers) <= 2 * len(relay.sessions) + 64
    assert all(len(c.of(ev.MessageReceived)) == 300 for name, c in net.clients.items() if name != "idle0")


def test_a_refused_say_is_rejected_by_its_msg_id_so_no_outbox_keeps_it(tmp_path: Path) -> None:
    """Protocol 7.3: an invalid SAY/WHISPER names its msg_id in a REJECTED; msg_id 0 is refused too."""
    net = SimNet(tmp_path)
    peer = RawPeer(net, ("10.6.6.8", 668))
    peer.pump()
    peer.link.send(m.Kind.LOGIN, encode_message(m.Login("mallory", "secret")))
    peer.pump()
    good = encode_message(m.Say(77, "lobby", "x"))
    empty = good[:-4] + b"\x00\x00" + good[-1:]  # text length 0, then the flags
    assert len(empty) == len(good) - 1
    peer.link.send(m.Kind.SAY, empty)
    zero = b"\x00" * 8 + good[8:]
    peer.link.send(m.Kind.SAY, zero)
    peer.pump()
    rejected = [x for x in peer.messages if isinstance(x, m.Rejected)]
    notices = [x for x in peer.messages if isinstance(x, m.Notice)]
    assert [(r.msg_id, r.code) for r in rejected] == [(77, ErrorCode.BAD_MESSAGE)]
    assert [n.code for n in notices] == [ErrorCode.BAD_MESSAGE]
    assert "msg_id 0" in notices[0].text
