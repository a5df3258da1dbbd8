"""Moving to another relay (docs/protocol.md 22) with the fake clock: the real Relay on a real SQLite
database, real ClientConnections, and a hand-moved clock. Each relay has its own address; a client
sends only to its current address and hears only from it, as the asyncio transport does.

The relays here take turns on one database (one killed, the next started on the same file and key),
which is what a single server restarted on another port is, and what the client cannot tell from a
cluster's relays: the same key, the same rooms, the same seqs.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from pathlib import Path

import pytest

from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.channel import Address, ServerChannel
from labchat.protocol.channel_common import DatagramKind
from labchat.protocol.client import ClientConfig, ClientConnection
from labchat.server.keys import load_or_create_server_key
from labchat.server.relay import Relay, RelayConfig
from labchat.server.store import Store
from labchat.server.tickets import TicketBook

from .sim import SimClient

A: Address = ("10.0.0.1", 8080)
B: Address = ("10.0.0.2", 8080)
C: Address = ("10.0.0.3", 9000)
CONFIG = ClientConfig()  # the documented defaults: the deadlines are the point


class RelayNet:
    """Relays by address, clients, a delay line and a clock."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.now = 1_700_000_000.0
        self.key = load_or_create_server_key(tmp_path / "server.key")
        self.relays: dict[Address, Relay] = {}
        self.clients: list[SimClient] = []
        self.sent_to: dict[Address, list[float]] = {}  # when each address was sent a datagram
        self.kinds_to: dict[Address, list[int]] = {}  # and of which datagram kind (3.1, byte 3)
        self._queue: list[tuple[float, int, Address, Address, bytes]] = []
        self._n = 0

    def start_relay(self, at: Address, *, key_file: str = "server.key", **config: object) -> Relay:
        key = self.key if key_file == "server.key" else load_or_create_server_key(self.tmp_path / key_file)
        channel = ServerChannel(key)
        relay = Relay(
            Store(self.tmp_path / "server.db", scrypt_n=2**10),
            channel,
            RelayConfig(**config),  # type: ignore[arg-type]
            TicketBook(bytes(range(32)), channel.public_key),
        )
        self.relays[at] = relay
        return relay

    def kill(self, at: Address) -> None:
        """kill -9: the relay is gone, with what it had not committed; its datagrams too."""
        relay = self.relays.pop(at)
        relay.store.close()
        self._queue = [q for q in self._queue if q[2] != at and q[3] != at]

    def add_client(
        self, user: str, address: Address, fallbacks: tuple[Address, ...] = (), **config: object
    ) -> SimClient:
        cfg = ClientConfig(**config) if config else CONFIG  # type: ignore[arg-type]
        conn = ClientConnection(user, "secret", config=cfg, address=address, fallbacks=fallbacks)
        client = SimClient(conn, (f"10.0.1.{len(self.clients) + 1}", 5000))
        self.clients.append(client)
        conn.connect(self.now)
        self._flush()
        return client

    def _ship(self, src: Address, dst: Address, data: bytes) -> None:
        self._n += 1
        heapq.heappush(self._queue, (self.now + 0.001, self._n, src, dst, data))

    def _flush(self) -> None:
        for at, relay in self.relays.items():
            for check in relay.password_checks():
                relay.complete_login(check.run(), self.now)
            for data, addr in relay.datagrams_to_send(self.now):
                self._ship(at, addr, data)
        for c in self.clients:
            for data in c.conn.datagrams_to_send(self.now):
                assert c.conn.address is not None
                self.sent_to.setdefault(c.conn.address, []).append(self.now)
                self.kinds_to.setdefault(c.conn.address, []).append(data[3])
                self._ship(c.addr, c.conn.address, data)
            c.seen.extend(c.conn.events())

    def step(self) -> bool:
        self._flush()
        times = [self._queue[0][0]] if self._queue else []
        times += [t for r in self.relays.values() if (t := r.next_timer()) is not None]
        for c in self.clients:
            t = c.conn.next_timer()
            assert t == c.conn._any_deadline(), "next_timer fast path disagrees"
            if t is not None:
                times.append(t)
        if not times:
            return False
        self.now = max(self.now, min(times))
        while self._queue and self._queue[0][0] <= self.now:
            _, _, src, dst, data = heapq.heappop(self._queue)
            if dst in self.relays:
                self.relays[dst].receive_datagram(data, src, self.now)
            for c in self.clients:
                if c.addr == dst and c.conn.address == src:  # only the current relay is heard
                    c.conn.receive_datagram(data, self.now)
        for relay in self.relays.values():
            relay.handle_timer(self.now)
        for c in self.clients:
            c.conn.handle_timer(self.now)
        self._flush()
        return True

    def run_until(self, done: Callable[[], bool], limit_s: float = 120.0) -> None:
        end = self.now + limit_s
        while not done():
            assert self.now < end, f"not done after {limit_s} simulated seconds"
            assert self.step(), "nothing left to happen, condition still false"

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self._flush()
            times = [self._queue[0][0]] if self._queue else []
            times += [t for r in self.relays.values() if (t := r.next_timer()) is not None]
            times += [t for c in self.clients if (t := c.conn.next_timer()) is not None]
            if not times or min(times) > end:
                self.now = end
                return
            self.step()


def texts(client: SimClient) -> list[str]:
    return [e.text for e in client.of(ev.MessageReceived)]


def test_a_silent_relay_is_left_for_the_fallback_after_the_named_deadline(tmp_path: Path) -> None:
    net = RelayNet(tmp_path)
    net.start_relay(A)
    ana = net.add_client("ana", A, (B,))
    budi = net.add_client("budi", A, (B,))
    net.run_until(lambda: bool(ana.of(ev.LoggedIn) and budi.of(ev.LoggedIn)))
    for i in range(5):
        ana.conn.say(f"line {i}", net.now)
    net.run_until(lambda: len(budi.of(ev.MessageReceived)) == 5)
    net.kill(A)
    relay_b = net.start_relay(B)  # the same database and key, served at another address
    said = net.now
    for i in range(5, 10):
        ana.conn.say(f"line {i}", net.now)
    net.run_until(lambda: len(ana.of(ev.RelayMoved)) == 1, limit_s=30)
    # Silent for rehandshake_s with lines outstanding: a new HELLO to A; unanswered for failover_s:
    # the next address. Not one datagram went to B before.
    first_to_b = net.sent_to[B][0]
    assert first_to_b == pytest.approx(said + CONFIG.rehandshake_s + CONFIG.failover_s, abs=0.01)
    assert ana.conn.address == B and ana.of(ev.RelayMoved)[-1] == ev.RelayMoved(*B)
    # Nothing of the dead relay's session went to B: only HELLOs, until B's own session was up.
    assert relay_b.channel.stats.unknown_session == 0 and relay_b.channel.stats.resets_sent == 0
    assert ana.of(ev.LoggedIn)[-1].resumed
    net.run_until(lambda: len(budi.of(ev.MessageReceived)) == 10 and ana.conn.pending == 0, limit_s=60)
    net.run_for(5.0)
    # Every line once, in order, on every member; each one confirmed once to its author.
    assert texts(budi) == [f"line {i}" for i in range(10)]
    delivered = ana.of(ev.MessageDelivered)
    assert [e.text for e in delivered] == [f"line {i}" for i in range(10)]
    assert len({e.local_id for e in delivered}) == 10
    seqs = [e.seq for e in budi.of(ev.MessageReceived)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10


def test_a_line_stored_before_the_relay_died_is_not_stored_twice(tmp_path: Path) -> None:
    """The relay committed the line, then died before its ACCEPTED left: the resend to the next
    relay (same msg_id) is recognised and confirmed with the original seq."""
    net = RelayNet(tmp_path)
    relay = net.start_relay(A)
    ana = net.add_client("ana", A, (B,))
    budi = net.add_client("budi", A, (B,))
    net.run_until(lambda: bool(ana.of(ev.LoggedIn) and budi.of(ev.LoggedIn)))
    ana.conn.say("once", net.now)
    net.run_until(lambda: relay.stats.messages_relayed == 1)
    net.kill(A)  # its ACCEPTED and MESSAGEs are lost with it
    net.start_relay(B)
    net.run_until(lambda: bool(ana.of(ev.MessageDelivered)) and bool(budi.of(ev.MessageReceived)), limit_s=60)
    net.run_for(5.0)
    assert texts(budi) == ["once"]
    assert len(ana.of(ev.MessageDelivered)) == 1


def test_a_dead_address_on_the_way_is_sent_nothing_but_hellos(tmp_path: Path) -> None:
    """The dead relay's session is not carried to the next address: a relay that never answers is
    sent HELLOs at the handshake's pace and nothing else (22.3), and the client goes on to C."""
    net = RelayNet(tmp_path)
    net.start_relay(A)
    ana = net.add_client("ana", A, (B, C))
    net.run_until(lambda: bool(ana.of(ev.LoggedIn)))
    for i in range(30):
        ana.conn.say(f"line {i}", net.now)  # plenty outstanding: the old link keeps retransmitting
    net.kill(A)
    net.start_relay(C)
    net.run_until(lambda: len(ana.of(ev.MessageDelivered)) == 30, limit_s=60)
    assert ana.conn.address == C
    assert set(net.kinds_to[B]) == {DatagramKind.HELLO} and len(net.kinds_to[B]) <= 6


def test_the_first_connection_tries_each_address_once(tmp_path: Path) -> None:
    net = RelayNet(tmp_path)
    net.start_relay(C)
    ana = net.add_client("ana", A, (B, C))
    net.run_until(lambda: bool(ana.of(ev.LoggedIn)), limit_s=30)
    assert ana.conn.address == C
    assert net.sent_to[B][0] == pytest.approx(net.sent_to[A][0] + CONFIG.failover_s)
    assert net.sent_to[C][0] == pytest.approx(net.sent_to[A][0] + 2 * CONFIG.failover_s)
    assert not ana.of(ev.RelayMoved)  # the first login moved nothing: it is where the user is


def test_the_first_connection_gives_up_after_every_address_had_its_turn(tmp_path: Path) -> None:
    net = RelayNet(tmp_path)
    ana = net.add_client("ana", A, (B,))
    start = net.now
    net.run_until(lambda: bool(ana.of(ev.Closed)), limit_s=30)
    assert net.now == pytest.approx(start + CONFIG.connect_timeout_s + CONFIG.failover_s)
    assert ana.of(ev.ConnectFailed)[0].reason == "no answer from any of the server's 2 addresses"
    assert max(net.sent_to[A]) < net.sent_to[B][0]  # A, then B, never back to A


def test_one_address_never_moves(tmp_path: Path) -> None:
    net = RelayNet(tmp_path)
    net.start_relay(A)
    ana = net.add_client("ana", A)
    net.run_until(lambda: bool(ana.of(ev.LoggedIn)))
    net.kill(A)
    net.start_relay(B)
    ana.conn.say("hello", net.now)
    net.run_for(60.0)
    assert ana.conn.address == A and B not in net.sent_to
    assert ana.conn.state is ev.ConnectionState.RECONNECTING


def test_a_relay_with_another_key_is_refused(tmp_path: Path) -> None:
    net = RelayNet(tmp_path)
    net.start_relay(A)
    ana = net.add_client("ana", A, (B,))
    net.run_until(lambda: bool(ana.of(ev.LoggedIn)))
    net.kill(A)
    net.start_relay(B, key_file="impostor.key")
    ana.conn.say("secret plans", net.now)
    net.run_until(lambda: bool(ana.of(ev.Closed)), limit_s=30)
    assert ana.of(ev.ServerKeyChanged) and ana.of(ev.Closed)[0].reason == "the server's key has changed"
    assert not ana.of(ev.LoggedIn)[1:]


def test_relays_named_by_the_server_are_tried_after_the_given_ones(tmp_path: Path) -> None:
    net = RelayNet(tmp_path)
    relay = net.start_relay(A, relay_addresses=(C, B))
    ana = net.add_client("ana", A, (B,))
    net.run_until(lambda: bool(ana.of(ev.LoggedIn)))
    net.run_for(1.0)
    # Given first, then fallbacks, then RELAYS' order; B only once, at its first place.
    assert ana.conn.addresses == (A, B, C)
    relay.set_relay_addresses([C])  # a relay went away: the list is sent again
    net.run_for(1.0)
    assert ana.conn.addresses == (A, B, C)
    relay.set_relay_addresses([])
    net.run_for(1.0)
    assert ana.conn.addresses == (A, B)


def test_a_client_told_by_relays_moves_there_and_resumes(tmp_path: Path) -> None:
    net = RelayNet(tmp_path)
    net.start_relay(A, relay_addresses=(B,))
    ana = net.add_client("ana", A)  # no --fallback: RELAYS alone tells it where to go
    budi = net.add_client("budi", A)
    net.run_until(lambda: ana.conn.addresses == (A, B) and budi.conn.addresses == (A, B))
    ana.conn.say("before", net.now)
    net.run_until(lambda: texts(budi) == ["before"])
    net.kill(A)
    net.start_relay(B, relay_addresses=(A,))
    ana.conn.say("after", net.now)
    net.run_until(lambda: texts(budi) == ["before", "after"], limit_s=60)
    assert ana.conn.address == B and budi.conn.address == B
    net.run_for(5.0)
    assert texts(budi) == ["before", "after"]


def test_relays_are_sent_only_to_clients_that_announce_the_capability(tmp_path: Path) -> None:
    net = RelayNet(tmp_path)
    relay = net.start_relay(A, relay_addresses=(B,))
    caps = CONFIG.capabilities & ~m.CAP_FAILOVER
    old = net.add_client("ana", A, capabilities=caps)
    new = net.add_client("budi", A)
    net.run_until(lambda: bool(old.of(ev.LoggedIn) and new.of(ev.LoggedIn)))
    net.run_for(1.0)
    assert old.conn.addresses == (A,) and new.conn.addresses == (A, B)
    sessions = {s.user: s for s in relay.sessions.values()}
    assert sessions["ana"].caps & m.CAP_FAILOVER == 0


def test_a_single_server_does_not_announce_failover(tmp_path: Path) -> None:
    net = RelayNet(tmp_path)
    relay = net.start_relay(A)
    ana = net.add_client("ana", A)
    net.run_until(lambda: bool(ana.of(ev.LoggedIn)))
    assert not relay.several_relays
    assert ana.conn._server_caps is not None and not ana.conn._server_caps & m.CAP_FAILOVER


# ---------------------------------------------------------------- against a scripted server (22.2, 22.6)


def test_cluster_unavailable_keeps_the_message_and_resends_it_in_order() -> None:
    from labchat.protocol.errors import ErrorCode

    from .scripted_server import logged_in

    server = logged_in(flags=m.CAP_ROOMS | m.CAP_LONG_MESSAGES | m.CAP_FAILOVER)
    server.conn.say("one", server.now)
    server.conn.say("two", server.now)
    server.exchange()
    first, second = (msg for msg in server.sent(m.Say))
    assert isinstance(first, m.Say) and isinstance(second, m.Say)
    for msg in (first, second):  # the relay refuses the room's queue behind the first too (22.6)
        server.send(m.Rejected(msg.msg_id, ErrorCode.CLUSTER_UNAVAILABLE, 1500, "the cluster is unreachable"))
    assert not server.events(ev.MessageFailed) and server.conn.pending == 2
    sent = len(server.sent(m.Say))
    server.advance(1.4)
    assert len(server.sent(m.Say)) == sent  # held until retry_after_ms has passed
    server.advance(0.2)
    again = [msg.msg_id for msg in server.sent(m.Say)[sent:] if isinstance(msg, m.Say)]
    assert again[:2] == [first.msg_id, second.msg_id]  # the same ids, in the order typed


def test_a_relays_message_that_does_not_decode_is_ignored() -> None:
    """A broken RELAYS (a port 0) is dropped at decode time; the list stays what it was."""
    from labchat.protocol.wire import decode_message

    from .scripted_server import logged_in

    body = b"\x00\x01" + b"\x00\x08" + b"10.0.0.9" + b"\x00\x00"
    with pytest.raises(Exception) as info:
        decode_message(m.Kind.RELAYS, body)
    assert type(info.value).__name__ == "DecodeError"
    server = logged_in(flags=m.CAP_ROOMS | m.CAP_FAILOVER)
    server.send(m.Relays((("10.0.0.7", 8080),)))
    assert server.conn.addresses == (("10.0.0.7", 8080),)  # no address given: the owner keeps it
