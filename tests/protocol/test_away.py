"""Away status (docs/protocol.md section 16.1) and /ignore, on the simulated network with a fake clock."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.errors import DecodeError, ErrorCode, LocalProtocolError
from labchat.protocol.wire import decode_message, encode_message

from .sim import SimClient, SimNet


def online(net: SimNet, *users: str) -> list[SimClient]:
    clients = [net.add_client(u) for u in users]
    net.run_until(lambda: all(c.of(ev.LoggedIn) and c.of(ev.PresenceUpdated) for c in clients))
    return clients


def away_news(c: SimClient) -> list[tuple[str, bool, str]]:
    return [(e.user, e.away, e.reason) for e in c.of(ev.UserAway)]


def notices(c: SimClient, code: int) -> list[str]:
    return [e.text for e in c.of(ev.ServerNotice) if e.code == code]


def test_away_is_told_to_the_room_and_to_whisperers_once_per_away_period(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    alice, bob = online(net, "alice", "bob")
    bob.conn.set_away("lunch", net.now)
    net.run_until(lambda: bool(alice.of(ev.UserAway)) and bool(bob.of(ev.UserAway)))
    assert away_news(alice) == away_news(bob) == [("bob", True, "lunch")]

    for text in ("are you there?", "hello?", "ok, later"):
        alice.conn.whisper("bob", text, net.now)
    net.run_until(lambda: len(alice.of(ev.MessageDelivered)) == 3)
    net.run_for(0.5)
    assert [e.text for e in bob.of(ev.PrivateReceived)] == ["are you there?", "hello?", "ok, later"]
    assert notices(alice, ErrorCode.USER_AWAY) == ["bob is away: lunch"]  # once, not per line

    bob.conn.set_away(None, net.now)
    net.run_until(lambda: len(alice.of(ev.UserAway)) == 2)
    assert away_news(alice)[-1] == ("bob", False, "")
    alice.conn.whisper("bob", "welcome back", net.now)
    bob.conn.set_away("", net.now)  # away without a reason: a new away period
    net.run_until(lambda: len(alice.of(ev.MessageDelivered)) == 4 and len(alice.of(ev.UserAway)) == 3)
    alice.conn.whisper("bob", "gone again?", net.now)
    net.run_until(lambda: len(alice.of(ev.MessageDelivered)) == 5)
    net.run_for(0.5)
    assert notices(alice, ErrorCode.USER_AWAY) == ["bob is away: lunch", "bob is away"]
    assert not notices(bob, ErrorCode.USER_AWAY)


def test_presence_lists_who_is_away_without_announcing_it(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    alice, bob = online(net, "alice", "bob")
    bob.conn.set_away("in a meeting", net.now)
    alice.conn.set_away("", net.now)
    net.run_until(lambda: len(alice.of(ev.UserAway)) == 2)
    (carol,) = online(net, "carol")
    first = carol.of(ev.PresenceUpdated)[0]
    assert first.users == ("alice", "bob", "carol")
    assert first.away == {"alice": "", "bob": "in a meeting"}
    assert not carol.of(ev.UserAway)  # the listing is a state, not news

    bob.conn.set_away(None, net.now)
    net.run_until(lambda: len(carol.of(ev.UserAway)) == 1)
    carol.conn.who(net.now)
    net.run_until(lambda: len(carol.of(ev.PresenceUpdated)) == 2)
    assert carol.of(ev.PresenceUpdated)[1].away == {"alice": ""}


def test_away_survives_a_server_restart_and_a_reconnect_but_not_a_logout(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    alice, bob = online(net, "alice", "bob")
    bob.conn.set_away("lunch", net.now)
    net.run_until(lambda: bool(alice.of(ev.UserAway)))
    net.crash_relay()
    net.start_relay()
    net.run_until(lambda: len(bob.of(ev.LoggedIn)) == 2 and len(alice.of(ev.LoggedIn)) == 2)
    net.run_for(1.0)
    (carol,) = online(net, "carol")
    assert carol.of(ev.PresenceUpdated)[-1].away == {"bob": "lunch"}  # resent by bob's client
    assert bob.conn.away_reason == "lunch"

    bob.deaf = True  # bob's link goes quiet: his client shakes hands again and replaces its session
    bob.conn.say("anyone?", net.now)
    net.run_for(7.0)
    bob.deaf = False
    net.run_until(lambda: len(bob.of(ev.LoggedIn)) == 3 and bool(bob.of(ev.MessageDelivered)))
    (dave,) = online(net, "dave")
    assert dave.of(ev.PresenceUpdated)[-1].away == {"bob": "lunch"}
    assert away_news(carol) == []  # a replaced session is no change: the room heard nothing

    bob.conn.quit(net.now)
    net.run_until(lambda: bool(bob.of(ev.Closed)) and bool(carol.of(ev.UserLeft)))
    again = net.add_client("bob")
    net.run_until(lambda: bool(again.of(ev.PresenceUpdated)))
    assert again.of(ev.PresenceUpdated)[-1].away == {}  # a logout ends being away


def test_coming_back_while_disconnected_clears_the_kept_state(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    alice, bob = online(net, "alice", "bob")
    bob.conn.set_away("lunch", net.now)
    net.run_until(lambda: bool(alice.of(ev.UserAway)))
    bob.online = False
    bob.conn.set_away(None, net.now)  # typed while the link is down: sent after the next login
    bob.conn.say("back", net.now)
    net.run_for(7.0)
    bob.online = True
    net.run_until(lambda: len(bob.of(ev.LoggedIn)) == 2 and bool(bob.of(ev.MessageDelivered)))
    net.run_until(lambda: away_news(alice)[-1] == ("bob", False, ""))


def test_flapping_away_cannot_flood_the_room(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    alice, bob = online(net, "alice", "bob")
    for i in range(700):
        bob.conn.set_away(f"r{i}" if i % 2 == 0 else None, net.now)
    net.run_for(2.0)
    assert 400 <= len(alice.of(ev.UserAway)) <= 520  # the burst of the token bucket, then dropped


def test_set_away_checks_the_reason_length(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    (alice,) = online(net, "alice")
    with pytest.raises(LocalProtocolError):
        alice.conn.set_away("x" * (m.MAX_AWAY_REASON_BYTES + 1), net.now)
    assert alice.conn.away_reason is None


def test_ignored_users_are_not_shown(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    alice, bob, carol = online(net, "alice", "bob", "carol")
    assert alice.conn.ignore("BOB") and not alice.conn.ignore("bob")
    assert alice.conn.ignored == ("BOB",)
    with pytest.raises(LocalProtocolError):
        alice.conn.ignore("not a name")
    bob.conn.say("spam", net.now)
    bob.conn.say("waves", net.now, action=True)
    bob.conn.whisper("alice", "private spam", net.now)
    net.run_until(lambda: len(bob.of(ev.MessageDelivered)) == 3)
    carol.conn.say("hello", net.now)
    net.run_until(lambda: len(alice.of(ev.MessageReceived)) == 1)
    assert [(e.user, e.text) for e in alice.of(ev.MessageReceived)] == [("carol", "hello")]
    assert not alice.of(ev.PrivateReceived)
    assert alice.conn.last_seq == 3  # hidden, yet counted: a reconnect does not bring them back

    assert alice.conn.unignore("bob") and not alice.conn.unignore("bob")
    bob.conn.say("visible again", net.now)
    net.run_until(lambda: len(alice.of(ev.MessageReceived)) == 2)
    assert alice.of(ev.MessageReceived)[-1].text == "visible again"


@given(st.sampled_from([m.Kind.SET_AWAY, m.Kind.AWAY]), st.binary(max_size=300))
def test_away_decoders_are_total(kind: int, body: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decoded = decode_message(kind, body)
        assert decode_message(kind, encode_message(decoded)) == decoded


def test_set_away_with_a_bad_value_is_a_decode_error() -> None:
    body = bytearray(encode_message(m.SetAway(1, "x")))
    body[0] = 7
    with pytest.raises(DecodeError):
        decode_message(m.Kind.SET_AWAY, bytes(body))
