"""Path validation and pre-login limits through the real relay and store, on the simulated network:
the attacks of the issue (reflection of a catch-up at a victim, sessions held open without a login)
and the case they must not break (a client whose address changes)."""

from __future__ import annotations

from pathlib import Path

from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.wire import encode_message

from ..protocol.sim import SERVER, SimNet
from .test_relay import RawPeer


def test_a_client_whose_address_changes_keeps_its_session(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    ana, budi = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"))
    ana.addr = ("10.0.9.9", 6000)  # a new network: datagrams to the old address now vanish
    for i in range(20):
        budi.conn.say(f"b{i}", net.now)
        ana.conn.say(f"a{i}", net.now)
        net.run_for(0.05)
    net.run_until(lambda: len(ana.of(ev.MessageReceived)) == 20 and len(budi.of(ev.MessageReceived)) == 20)
    assert [e.text for e in ana.of(ev.MessageReceived)] == [f"b{i}" for i in range(20)]
    assert len(ana.of(ev.LoggedIn)) == 1  # the same session moved: no re-handshake, no new login
    assert net.relay is not None
    [sess] = [s for s in net.relay.sessions.values() if s.user == "ana"]
    assert sess.addr == ana.addr and net.relay.channel.stats.migrations == 1


def test_a_login_sent_from_a_victims_address_reflects_nothing_at_it(tmp_path: Path) -> None:
    """Issue 14, item 1: a LOGIN with an old resume point sent "from" a victim used to move the
    session there, and the catch-up with it (2,505x). Now the victim gets only challenges."""
    net = SimNet(tmp_path)
    ana = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    for i in range(300):
        ana.conn.say(f"stored message {i} " + "x" * 100, net.now)
    net.run_until(lambda: len(ana.of(ev.MessageDelivered)) == 300)
    relay = net.relay
    assert relay is not None
    attacker, victim = ("10.6.6.6", 666), ("10.7.7.7", 7777)
    peer = RawPeer(net, attacker)
    peer.pump()  # the handshake, from the attacker's own address
    assert peer.channel.established
    peer.link.send(m.Kind.LOGIN, encode_message(m.Login("mallory", "secret", resume_seq=1)))
    received_from_victim = to_victim = to_attacker = 0
    for step in range(200):  # the LOGIN and blind ACK-bearing PINGs, all "from" the victim
        net.now += 0.01
        if step % 20 == 0:
            peer.link.send(m.Kind.PING, encode_message(m.Ping()))
        for packet in peer.link.packets_to_send(net.now):
            datagram = peer.channel.seal(packet, net.now)
            received_from_victim += len(datagram)
            relay.receive_datagram(datagram, victim, net.now)
        for check in relay.password_checks():
            relay.complete_login(check.run(), net.now)
        relay.handle_timer(net.now)
        for data, addr in relay.datagrams_to_send(net.now):
            if addr == victim:
                to_victim += len(data)
            elif addr == attacker:
                to_attacker += len(data)
                payload = peer.channel.receive_datagram(data, net.now)
                if payload is not None:
                    peer.link.receive_packet(payload, net.now)  # so its ACKs keep the flow going
    print(f"\nfrom the victim {received_from_victim} B, to it {to_victim} B, to the attacker {to_attacker} B")
    assert to_victim <= 3 * received_from_victim, (to_victim, received_from_victim)
    assert to_attacker > 30_000  # the history went where the handshake was made
    assert any(s.user == "mallory" and s.addr == attacker for s in relay.sessions.values())
    assert SERVER not in (attacker, victim)


def test_a_session_that_never_logs_in_is_dropped_however_often_it_pings(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    ana = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    relay = net.relay
    assert relay is not None
    peer = RawPeer(net, ("10.6.6.6", 666))
    peer.pump()
    born = net.now
    session_id = peer.channel.session_id
    for _ in range(12):
        peer.link.send(m.Kind.PING, encode_message(m.Ping()))
        peer.pump()
        if net.now - born < 9.5:
            assert session_id in relay.sessions  # confirmed and answered while young
        net.run_for(1.0)
    assert session_id not in relay.sessions and relay.channel.stats.prelogin_expired == 1
    ana.conn.say("still here", net.now)  # a logged-in session is not affected
    net.run_until(lambda: bool(ana.of(ev.MessageDelivered)))
    assert any(s.user == "ana" for s in relay.sessions.values())
