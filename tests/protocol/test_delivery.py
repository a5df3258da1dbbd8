"""Delivery rules of issue 'never lose a message', played on a simulated network with a fake clock."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from labchat.protocol import events as ev
from labchat.protocol.errors import ErrorCode
from labchat.server.relay import RelayConfig

from .sim import PathModel, SimNet, fast_config


def room_texts(client) -> list[str]:  # type: ignore[no-untyped-def]
    """What a user's log shows, in order: others' messages and own confirmed ones."""
    out = []
    for e in client.seen:
        if isinstance(e, ev.MessageReceived) or (isinstance(e, ev.MessageDelivered) and e.to is None):
            out.append((e.seq, e.text))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lossy_network_everyone_sees_everything_once_in_one_order(tmp_path: Path, seed: int) -> None:
    net = SimNet(tmp_path, seed=seed, path=PathModel(loss=0.2, duplicate=0.05, reorder=0.05))
    users = ["ana", "budi", "citra"]
    for u in users:
        net.add_client(u)
    net.run_until(lambda: net.logged_in(*users))
    for i in range(60):
        for u in users:
            net.clients[u].conn.say(f"{u}-{i}", net.now)
        net.run_for(0.01)
    total = 60 * len(users)
    net.run_until(lambda: all(len(room_texts(net.clients[u])) == total for u in users), limit_s=300)
    logs = [room_texts(net.clients[u]) for u in users]
    assert logs[0] == logs[1] == logs[2]
    seqs = [s for s, _ in logs[0]]
    assert seqs == sorted(seqs) and len(set(seqs)) == total
    for u in users:
        mine = [t for _, t in logs[0] if t.startswith(f"{u}-")]
        assert mine == [f"{u}-{i}" for i in range(60)]  # each sender's order is kept
        assert net.clients[u].conn.pending == 0


def test_silent_client_times_out(tmp_path: Path) -> None:
    net = SimNet(tmp_path, relay_config=RelayConfig(client_timeout_s=10.0))
    a, b = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"))
    b.online = False  # the laptop lid closes: no goodbye
    start = net.now
    net.run_until(lambda: bool(a.of(ev.UserLeft)))
    left = a.of(ev.UserLeft)[0]
    assert (left.user, left.reason) == ("budi", "timed out")
    assert 10.0 <= net.now - start <= 10.0 + 5.0


def test_client_notices_silent_server_and_reconnects_after_restart(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    a, b = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"))
    a.conn.say("before", net.now)
    net.run_until(lambda: bool(b.of(ev.MessageReceived)))
    net.crash_relay()
    a.conn.say("during outage", net.now)
    crash = net.now
    net.run_until(lambda: a.conn.state is ev.ConnectionState.RECONNECTING)
    assert net.now - crash <= 5.0  # noticed within seconds
    net.run_for(3.0)
    net.start_relay()  # same database
    net.run_until(lambda: any(e.text == "during outage" for e in b.of(ev.MessageReceived)), limit_s=60)
    assert a.conn.state is ev.ConnectionState.CONNECTED
    assert [e.text for e in b.of(ev.MessageReceived)] == ["before", "during outage"]
    assert a.of(ev.LoggedIn)[-1].resumed


def test_confirmed_messages_survive_a_crash_and_nothing_repeats(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    a, b = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"))
    for i in range(20):
        a.conn.say(f"m{i}", net.now)
    net.run_until(lambda: len(a.of(ev.MessageDelivered)) == 20)
    net.crash_relay()
    net.run_for(1.0)
    net.start_relay()
    c = net.add_client("citra")
    net.run_until(lambda: len(c.of(ev.MessageReceived)) == 20)
    assert [e.text for e in c.of(ev.MessageReceived)] == [f"m{i}" for i in range(20)]
    assert all(e.history for e in c.of(ev.MessageReceived))
    a.conn.say("after", net.now)
    net.run_until(lambda: any(e.text == "after" for e in b.of(ev.MessageReceived)), limit_s=60)
    texts = [e.text for e in b.of(ev.MessageReceived)]
    assert texts == [f"m{i}" for i in range(20)] + ["after"]


def test_resent_message_is_relayed_once(tmp_path: Path) -> None:
    """The confirmation is lost in a crash window: the resend must not create a second message."""
    net = SimNet(tmp_path)
    a, b = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"))
    a.conn.say("once", net.now)
    # Deliver ana's datagram to the relay, let it commit, then crash before anything goes back.
    net.run_until(lambda: net.relay is not None and net.relay.stats.messages_relayed == 1)
    a.online = False
    net.run_for(0.5)
    a.online = True
    net.run_until(lambda: len(a.of(ev.MessageDelivered)) == 1, limit_s=60)
    net.run_for(2.0)
    assert [e.text for e in b.of(ev.MessageReceived)] == ["once"]


def test_rate_limit_holds_back_without_losing(tmp_path: Path) -> None:
    net = SimNet(tmp_path, relay_config=replace(RelayConfig(), rate_per_s=50, rate_burst=20))
    a, b = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"))
    for i in range(300):
        a.conn.say(f"n{i}", net.now)
    net.run_until(lambda: len(b.of(ev.MessageReceived)) == 300, limit_s=60)
    assert [e.text for e in b.of(ev.MessageReceived)] == [f"n{i}" for i in range(300)]
    assert any(n.code == ErrorCode.RATE_LIMITED for n in a.of(ev.ServerNotice))
    assert not a.of(ev.MessageFailed)


def test_address_change_keeps_the_session(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    a, b = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"))
    a.addr = ("10.0.9.9", 6000)  # moved from Wi-Fi to cable
    a.conn.say("from my new address", net.now)
    net.run_until(lambda: bool(b.of(ev.MessageReceived)))
    assert len(a.of(ev.LoggedIn)) == 1  # no new login
    assert not b.of(ev.UserLeft)
    b.conn.say("got it", net.now)
    net.run_until(lambda: bool(a.of(ev.MessageReceived)))


def test_quit_is_announced_at_once(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    a, b = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"))
    a.conn.say("bye all", net.now)
    a.conn.quit(net.now)  # typed right after: the message still goes first
    net.run_until(lambda: bool(b.of(ev.UserLeft)))
    assert [e.text for e in b.of(ev.MessageReceived)] == ["bye all"]
    assert b.of(ev.UserLeft)[0].reason == "quit"
    net.run_until(lambda: a.conn.state is ev.ConnectionState.CLOSED, limit_s=0.1)  # BYE acknowledged


def test_relogin_that_goes_unanswered_starts_over(tmp_path: Path) -> None:
    """The server restarts again while the client is logging back in: it must not wait forever."""
    net = SimNet(tmp_path)
    a = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    net.crash_relay()
    net.run_until(lambda: a.conn.state is ev.ConnectionState.RECONNECTING)
    net.start_relay()
    # Let the new handshake finish, then crash again before the LOGIN is answered.
    from labchat.protocol.client import Phase

    net.run_until(lambda: a.conn.phase is Phase.LOGIN)
    net.crash_relay()
    net.run_for(2.0)
    net.start_relay()
    net.run_until(lambda: len(a.of(ev.LoggedIn)) == 2, limit_s=60)


def test_sender_catching_up_sees_everything_in_order(tmp_path: Path) -> None:
    """A sender whose downlink is stalled gets its own confirmation in room order, skipping nothing."""
    cfg = replace(RelayConfig(), max_backlog_frames=64, rate_per_s=10_000, rate_burst=10_000)
    net = SimNet(tmp_path, relay_config=cfg)
    a, b = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"))
    a.deaf = True
    for i in range(200):
        b.conn.say(f"b{i}", net.now)
    net.run_until(lambda: len(b.of(ev.MessageDelivered)) == 200)
    a.conn.say("mine", net.now)
    net.run_for(0.5)
    a.deaf = False
    net.run_until(lambda: not a.conn.pending and len(a.of(ev.MessageReceived)) == 200, limit_s=60)
    assert [t for _, t in room_texts(a)] == [f"b{i}" for i in range(200)] + ["mine"]
    assert [t for _, t in room_texts(b)] == [f"b{i}" for i in range(200)] + ["mine"]


def test_replaced_while_rate_limited(tmp_path: Path) -> None:
    net = SimNet(tmp_path, relay_config=replace(RelayConfig(), rate_per_s=5, rate_burst=2))
    a, b = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"))
    for i in range(10):
        a.conn.say(f"r{i}", net.now)
    net.run_for(0.05)
    again = net.add_client("ana", port=5999)  # the same user logs in elsewhere while messages are held
    net.run_until(lambda: bool(again.of(ev.LoggedIn)) and bool(a.of(ev.Closed)))
    net.run_for(5.0)
    again.conn.say("still fine", net.now)
    net.run_until(lambda: any(e.text == "still fine" for e in b.of(ev.MessageReceived)))


def test_big_room_online_list_comes_in_parts(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    users = [f"student{i:02d}" for i in range(90)]
    for u in users:
        net.add_client(u)
    net.run_until(lambda: net.logged_in(*users), limit_s=60)
    last = net.clients[users[-1]]
    net.run_until(lambda: bool(last.of(ev.PresenceUpdated)))
    (presence,) = last.of(ev.PresenceUpdated)
    assert presence.users == tuple(sorted(users))
    last.conn.who(net.now)
    net.run_until(lambda: len(last.of(ev.PresenceUpdated)) == 2)
    assert last.of(ev.PresenceUpdated)[1].requested and len(last.of(ev.PresenceUpdated)[1].users) == 90


def test_clean_shutdown_then_restart(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    a = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    assert net.relay is not None
    net.relay.shutdown(net.now)
    net.run_for(0.5)  # the grace period: the old server still answers, but takes no new logins
    assert any("shutting down" in n.text for n in a.of(ev.ServerNotice))
    assert a.conn.state is ev.ConnectionState.RECONNECTING
    assert len(a.of(ev.LoggedIn)) == 1
    net.crash_relay()
    net.run_for(1.0)
    net.start_relay()
    net.run_until(lambda: len(a.of(ev.LoggedIn)) == 2, limit_s=30)
    assert a.conn.state is ev.ConnectionState.CONNECTED


def test_idle_connection_never_looks_lost(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    a = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    net.run_for(60.0)  # a quiet minute: only keepalives
    states = [e.state for e in a.of(ev.StateChanged)]
    assert ev.ConnectionState.RECONNECTING not in states
    assert a.conn.state is ev.ConnectionState.CONNECTED


def test_slow_trust_decision_does_not_time_out(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    a = net.add_client("ana", config=fast_config(confirm_new_key=True))
    net.run_until(lambda: bool(a.of(ev.ServerKeyTrusted)))
    net.run_for(30.0)  # the user reads the fingerprint slowly
    assert not a.of(ev.ConnectFailed)
    a.conn.trust_server_key(net.now)
    net.run_until(lambda: net.logged_in("ana"))


def test_quit_typed_before_login_still_sends_what_came_first(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    b = net.add_client("budi")
    net.run_until(lambda: net.logged_in("budi"))
    a = net.add_client("ana")
    a.conn.say("hello", net.now)  # a script piping "hello\nQUIT\n": both arrive before the login
    a.conn.quit(net.now)
    net.run_until(lambda: a.conn.state is ev.ConnectionState.CLOSED and bool(b.of(ev.UserLeft)))
    assert [e.text for e in b.of(ev.MessageReceived)] == ["hello"]
    assert b.of(ev.UserLeft)[0].reason == "quit"


def test_clients_that_log_in_together_do_not_ping_together(tmp_path: Path) -> None:
    """Each client pings after its own 80-100 % of keepalive_s, so a class that logged in at once
    does not hit the server with a burst of PINGs every few seconds for the rest of the lesson."""
    net = SimNet(tmp_path)
    names = [f"pupil{i}" for i in range(12)]
    for name in names:
        net.add_client(name)
    net.run_until(lambda: net.logged_in(*names))
    net.run_for(20.0)  # only keepalives from here on
    deadlines = {round(t, 3) for c in net.clients.values() if (t := c.conn.next_timer()) is not None}
    assert len(deadlines) > len(names) // 2  # spread out, not one instant for everybody
    for c in net.clients.values():
        assert c.conn.state is ev.ConnectionState.CONNECTED
