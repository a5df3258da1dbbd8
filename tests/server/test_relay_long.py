"""The relay's side of long messages, history pages and search against a peer that breaks the rules
(docs/protocol.md section 15): every mistake gets its documented answer, and nothing else happens."""

from __future__ import annotations

from pathlib import Path

from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.errors import ErrorCode
from labchat.protocol.wire import decode_message, encode_message

from ..protocol.sim import SimNet
from .test_relay import RawPeer


def _logged_in_peer(net: SimNet, name: str = "mallory", flags: int = m.CAP_LONG_MESSAGES) -> RawPeer:
    peer = RawPeer(net, ("10.6.6.8", 668))
    peer.pump()
    peer.link.send(m.Kind.LOGIN, encode_message(m.Login(name, "secret", "lobby", 0, flags)))
    peer.pump()
    ok = [decode_message(f.kind, f.body) for f in peer.frames if f.kind == m.Kind.LOGIN_OK]
    assert ok and ok[0].flags & m.CAP_LONG_MESSAGES  # type: ignore[attr-defined]
    peer.frames.clear()
    return peer


def _send(peer: RawPeer, *messages: m.Message) -> list[m.Message]:
    start = len(peer.frames)
    for message in messages:
        peer.link.send(message.KIND, encode_message(message))
    peer.pump()
    return [decode_message(f.kind, f.body) for f in peer.frames[start:]]


def test_parts_out_of_order_are_refused_with_bad_parts(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    ana = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    peer = _logged_in_peer(net)
    replies = _send(peer, m.SayPart(5, "lobby", "", 0, 1, 3, "no start"))
    assert [(type(r), r.code) for r in replies] == [(m.Notice, ErrorCode.BAD_PARTS)]  # type: ignore[attr-defined]
    replies = _send(peer, m.SayPart(6, "lobby", "", 0, 0, 3, "a"), m.SayPart(7, "lobby", "", 0, 0, 2, "b"))
    assert [type(r) for r in replies] == [m.Notice]  # the first one was dropped unfinished
    replies = _send(peer, m.SayPart(7, "lobby", "", 0, 1, 2, "c"))
    assert [type(r) for r in replies] == [m.Accepted]  # the second one completed: "bc"
    net.run_until(lambda: bool(ana.of(ev.MessageReceived)))
    assert [e.text for e in ana.of(ev.MessageReceived)] == ["bc"]


def test_over_16_kb_in_parts_is_rejected_once_and_never_stored(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    peer = _logged_in_peer(net)
    parts = [m.SayPart(9, "lobby", "", 0, i, 20, "x" * 900) for i in range(20)]  # 18000 bytes
    replies = _send(peer, *parts)
    assert [(type(r), r.code) for r in replies] == [(m.Rejected, ErrorCode.TOO_LONG)]  # type: ignore[attr-defined]
    assert "the limit is 16 KB" in replies[0].text  # type: ignore[attr-defined]
    assert net.relay is not None and net.relay.store.last_seq("lobby") == 0
    # The session goes on: a proper long message after it is accepted.
    long_ok = m.SayPart(10, "lobby", "", 0, 0, 2, "y" * 900), m.SayPart(10, "lobby", "", 0, 1, 2, "z")
    replies = _send(peer, *long_ok)
    assert [type(r) for r in replies] == [m.Accepted]


def test_requests_for_another_room_or_without_words_end_with_an_error(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    peer = _logged_in_peer(net)
    replies = _send(
        peer,
        m.HistoryRequest(1, "kitchen", 0, 10),
        m.SearchRequest(2, "lobby", "   ", 10),
        m.SearchRequest(3, "lobby", "w" * 300, 10),
        m.SearchRequest(4, "lobby", "!!!", 0),
        m.HistoryRequest(5, "lobby", 0, 0),
    )
    done = [(r.request_id, r.code, r.more) for r in replies if isinstance(r, m.RequestDone)]
    assert done == [
        (1, ErrorCode.NO_SUCH_ROOM, 0),
        (2, ErrorCode.BAD_QUERY, 0),
        (3, ErrorCode.BAD_QUERY, 0),
        (4, 0, 0),  # no word in it: nothing found, not an error
        (5, 0, 0),  # an empty room's history
    ]
    assert len(replies) == 5


def test_history_requests_in_a_loop_are_rate_limited(tmp_path: Path) -> None:
    from dataclasses import replace

    from labchat.server.relay import RelayConfig

    net = SimNet(tmp_path, relay_config=replace(RelayConfig(), rate_per_s=1, rate_burst=3))
    peer = _logged_in_peer(net)
    replies = _send(peer, *[m.HistoryRequest(i, "lobby", 0, 100) for i in range(1, 7)])
    codes = [r.code for r in replies if isinstance(r, m.RequestDone)]  # type: ignore[attr-defined]
    assert codes == [0, 0, 0, ErrorCode.RATE_LIMITED, ErrorCode.RATE_LIMITED, ErrorCode.RATE_LIMITED]


def test_a_version_1_login_gets_previews_of_long_messages(tmp_path: Path) -> None:
    """The exact bytes of today's LOGIN (no appended flags): the session is treated as an old client."""
    net = SimNet(tmp_path)
    ana = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    peer = RawPeer(net, ("10.6.6.9", 669))
    peer.pump()
    v1_login = encode_message(m.Login("olga", "secret", "lobby", 0))[:-10]  # no flags, ticket, cursors, seat
    peer.link.send(m.Kind.LOGIN, v1_login)
    peer.pump()
    assert any(f.kind == m.Kind.LOGIN_OK for f in peer.frames)
    start = len(peer.frames)
    ana.conn.say("z" * 5000, net.now)
    net.run_until(lambda: ana.conn.pending == 0)
    # The sim shipped the relay's datagrams for the peer into the void: its retransmissions reach it.
    assert net.relay is not None
    for _ in range(5):
        net.now += 0.6
        net.relay.handle_timer(net.now)
        peer.pump()
    kinds = [f.kind for f in peer.frames[start:]]
    assert m.Kind.MESSAGE_PART not in kinds
    (preview,) = [decode_message(f.kind, f.body) for f in peer.frames[start:] if f.kind == m.Kind.MESSAGE]
    assert preview.text.endswith("[4150 more bytes: update labchat to read it]")  # type: ignore[attr-defined]
