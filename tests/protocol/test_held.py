"""Private messages held for offline users (docs/protocol.md section 16.2), with a fake clock."""

from __future__ import annotations

from pathlib import Path

from labchat.protocol import events as ev
from labchat.protocol.errors import ErrorCode
from labchat.server.relay import HELD_TTL_S, MAX_HELD_PER_USER

from .sim import SimClient, SimNet


def registered_then_gone(net: SimNet, user: str) -> None:
    """`user` has an account and is offline."""
    c = net.add_client(user)
    net.run_until(lambda: bool(c.of(ev.LoggedIn)))
    c.conn.quit(net.now)
    net.run_until(lambda: bool(c.of(ev.Closed)))


def login(net: SimNet, user: str) -> SimClient:
    c = net.add_client(user)
    net.run_until(lambda: bool(c.of(ev.LoggedIn)) and bool(c.of(ev.PresenceUpdated)))
    return c


def offline_notices(c: SimClient) -> list[str]:
    return [e.text for e in c.of(ev.ServerNotice) if e.code == ErrorCode.RECIPIENT_OFFLINE]


def held_rows(net: SimNet, user: str) -> int:
    assert net.relay is not None
    return net.relay.store.held_count(user)


def test_whisper_to_an_offline_account_is_held_and_delivered_at_its_next_login(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    registered_then_gone(net, "bob")
    alice = login(net, "alice")
    alice.conn.whisper("BOB", "lunch at noon?", net.now)
    net.run_for(0.5)
    alice.conn.whisper("bob", "waves", net.now, action=True)
    net.run_until(lambda: len(alice.of(ev.MessageDelivered)) == 2)
    assert offline_notices(alice) == ["bob is offline: will be delivered when bob returns"]  # once
    sent_at = [e.ts for e in alice.of(ev.MessageDelivered)]
    assert held_rows(net, "bob") == 2

    net.run_for(30.0)
    bob = login(net, "bob")
    net.run_until(lambda: len(bob.of(ev.PrivateReceived)) == 2)
    got = bob.of(ev.PrivateReceived)
    assert [(p.sender, p.text, p.action, p.held) for p in got] == [
        ("alice", "lunch at noon?", False, True),
        ("alice", "waves", True, True),
    ]
    assert [p.ts for p in got] == sent_at  # the time it was sent, not the time it arrived
    net.run_until(lambda: held_rows(net, "bob") == 0)  # deleted once acknowledged

    alice.conn.whisper("bob", "live now", net.now)
    net.run_until(lambda: len(bob.of(ev.PrivateReceived)) == 3)
    assert not bob.of(ev.PrivateReceived)[-1].held


def test_a_name_without_an_account_is_still_no_such_user(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    alice = login(net, "alice")
    alice.conn.whisper("nobody", "hello?", net.now)
    net.run_until(lambda: bool(alice.of(ev.MessageFailed)))
    assert alice.of(ev.MessageFailed)[0].reason == "nobody is not online"
    assert not offline_notices(alice)


def test_crash_between_delivery_and_ack_delivers_again_and_the_client_drops_the_copy(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    registered_then_gone(net, "bob")
    alice = login(net, "alice")
    alice.conn.whisper("bob", "are you getting this?", net.now)
    net.run_until(lambda: bool(alice.of(ev.MessageDelivered)))
    bob = net.add_client("bob")
    net.run_until(lambda: bool(bob.of(ev.PrivateReceived)))
    net.crash_relay()  # bob's acknowledgement is lost with the server
    net.start_relay()
    assert held_rows(net, "bob") == 1  # not deleted: it was never acknowledged
    net.run_until(lambda: len(bob.of(ev.LoggedIn)) == 2)
    net.run_until(lambda: held_rows(net, "bob") == 0)
    assert [p.text for p in bob.of(ev.PrivateReceived)] == ["are you getting this?"]  # shown once


def test_resent_whisper_is_held_once_even_across_a_restart(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    registered_then_gone(net, "bob")
    alice = login(net, "alice")
    alice.deaf = True  # the ACCEPTED never reaches alice: she will resend with the same msg_id
    alice.conn.whisper("bob", "only once", net.now)
    net.run_for(0.2)
    assert held_rows(net, "bob") == 1
    net.crash_relay()  # and the relay's memory of recent ids is gone with it
    net.start_relay()
    alice.deaf = False
    net.run_until(lambda: bool(alice.of(ev.MessageDelivered)))
    assert len(alice.of(ev.LoggedIn)) == 2  # it was resent on a new session
    assert held_rows(net, "bob") == 1
    bob = login(net, "bob")
    net.run_until(lambda: held_rows(net, "bob") == 0)
    assert [p.text for p in bob.of(ev.PrivateReceived)] == ["only once"]


def test_at_most_100_held_per_recipient(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    registered_then_gone(net, "bob")
    alice = login(net, "alice")
    for i in range(MAX_HELD_PER_USER + 2):
        alice.conn.whisper("bob", f"note {i}", net.now)
    net.run_until(lambda: len(alice.of(ev.MessageDelivered)) + len(alice.of(ev.MessageFailed)) == 102)
    assert len(alice.of(ev.MessageDelivered)) == MAX_HELD_PER_USER
    failed = alice.of(ev.MessageFailed)
    assert [f.text for f in failed] == ["note 100", "note 101"]
    assert failed[0].reason == "bob is offline and has too many messages waiting"
    bob = login(net, "bob")
    net.run_until(lambda: len(bob.of(ev.PrivateReceived)) == MAX_HELD_PER_USER)
    assert [p.text for p in bob.of(ev.PrivateReceived)] == [f"note {i}" for i in range(MAX_HELD_PER_USER)]


def test_held_messages_expire_after_seven_days(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    registered_then_gone(net, "bob")
    assert net.relay is not None
    old = int((net.now - HELD_TTL_S - 60) * 1000)
    net.relay.store.hold_private("alice", "bob", old, "too old", 0, 1)
    net.relay.store.hold_private("alice", "bob", old + 120_000, "six days and 23 hours", 0, 2)
    bob = login(net, "bob")
    net.run_until(lambda: bool(bob.of(ev.PrivateReceived)))
    net.run_for(1.0)
    assert [p.text for p in bob.of(ev.PrivateReceived)] == ["six days and 23 hours"]
    net.run_until(lambda: held_rows(net, "bob") == 1)  # the delivered one is gone
    alice = login(net, "alice")
    alice.conn.whisper("carol", "x", net.now)  # no account: refused, and nothing is held
    registered_then_gone(net, "carol")
    alice.conn.whisper("carol", "hello carol", net.now)  # holding one deletes the expired ones
    net.run_until(lambda: held_rows(net, "carol") == 1)
    assert held_rows(net, "bob") == 0


def test_ignored_sender_held_message_is_hidden(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    registered_then_gone(net, "bob")
    alice, carol = login(net, "alice"), login(net, "carol")
    alice.conn.whisper("bob", "from alice", net.now)
    carol.conn.whisper("bob", "from carol", net.now)
    net.run_until(lambda: bool(alice.of(ev.MessageDelivered)) and bool(carol.of(ev.MessageDelivered)))
    bob = net.add_client("bob")
    bob.conn.ignore("carol")
    net.run_until(lambda: bool(bob.of(ev.PrivateReceived)))
    net.run_until(lambda: held_rows(net, "bob") == 0)
    assert [p.text for p in bob.of(ev.PrivateReceived)] == ["from alice"]
