"""Two relays on one NATS cluster: one room order for everyone, nothing confirmed lost.

Real parts throughout: a three-node JetStream cluster (tests/nats_cluster.py), relays as in-process
RelayServers with their bridge on real UDP sockets, real ChatClients (tests/helpers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.channel import ServerChannel
from labchat.protocol.client import ClientConfig
from labchat.protocol.errors import ErrorCode
from labchat.server.backplane import ClusterBackplane
from labchat.server.cluster import names
from labchat.server.cluster.bridge import ClusterBridge
from labchat.server.cluster.connection import ClusterConnection
from labchat.server.keys import load_or_create_server_key, public_key_of
from labchat.server.relay import Relay, RelayConfig
from labchat.server.store import Store
from labchat.server.tickets import TicketBook, derive_ticket_key
from labchat.server.transport import RelayServer, serve
from tests.helpers import TEST_SCRYPT_N, ClientUnderTest, connect
from tests.nats_cluster import NatsCluster

ROOM = m.DEFAULT_ROOM


@dataclass
class ClusterRelay:
    server: RelayServer
    bridge: ClusterBridge

    @property
    def relay(self) -> Relay:
        return self.server.relay

    async def stop(self) -> None:
        await self.bridge.close()
        await self.server.stop(grace_s=0)
        await self.bridge.conn.close()


async def start_relay(
    base: Path, nats: NatsCluster, *, publish_deadline_s: float = 5.0, **overrides: object
) -> ClusterRelay:
    """One relay: its own SQLite replica in `base`, the cluster's shared key, its bridge."""
    base.mkdir(parents=True, exist_ok=True)
    key = load_or_create_server_key(base.parent / "cluster.key")  # one key file, as copied to each
    store = Store(base / "relay.db", scrypt_n=TEST_SCRYPT_N)
    config = replace(RelayConfig(), **overrides)  # type: ignore[arg-type]
    tickets = TicketBook(derive_ticket_key(key), public_key_of(key))
    relay = Relay(store, ServerChannel(key), config, tickets, ClusterBackplane())
    server = await serve("127.0.0.1", 0, relay)
    conn = await ClusterConnection.connect(nats.urls)
    bridge = await ClusterBridge.start(server, conn, publish_deadline_s=publish_deadline_s)
    return ClusterRelay(server, bridge)


@contextlib.asynccontextmanager
async def running(*items: ClusterRelay | ClientUnderTest) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for item in reversed(items):
            with contextlib.suppress(Exception):
                if isinstance(item, ClusterRelay):
                    await item.stop()
                else:
                    await item.close()


def lines_seen(cut: ClientUnderTest) -> dict[int, tuple[str, str]]:
    """seq -> (user, text) of every live room line this client showed (its own included); a seq
    shown twice fails the test on the spot."""
    seen: dict[int, tuple[str, str]] = {}
    me = cut.client.user
    for event in cut.seen:
        if isinstance(event, ev.MessageReceived) and not event.history and event.room == ROOM:
            entry = (event.user, event.text)
        elif isinstance(event, ev.MessageDelivered) and event.room == ROOM and event.seq:
            entry = (me, event.text)
        else:
            continue
        assert event.seq not in seen, f"{me} was shown #{event.seq} twice"
        seen[event.seq] = entry
    return seen


def one_order(clients: Iterable[ClientUnderTest], expected: int) -> list[tuple[str, str]]:
    """Every client showed the same `expected` lines under the same seqs; returns them in order."""
    views = [lines_seen(c) for c in clients]
    first = views[0]
    assert len(first) == expected, f"{len(first)} lines, expected {expected}"
    for view in views[1:]:
        assert view == first
    ordered = [first[seq] for seq in sorted(first)]
    assert len(set(ordered)) == expected, "a line was stored twice"
    return ordered


async def test_two_relays_chat_both_ways_in_one_order(tmp_path: Path, nats_cluster: NatsCluster) -> None:
    a = await start_relay(tmp_path / "a", nats_cluster)
    b = await start_relay(tmp_path / "b", nats_cluster)
    alice = await connect(a.server, "alice", tmp_path=tmp_path)
    carol = await connect(a.server, "carol", tmp_path=tmp_path)
    bob = await connect(b.server, "bob", tmp_path=tmp_path)
    dave = await connect(b.server, "dave", tmp_path=tmp_path)
    clients = [alice, carol, bob, dave]
    async with running(a, b, *clients):
        per_client = 15
        for i in range(per_client):  # interleaved on both relays, as fast as they go
            for c in clients:
                c.client.submit(f"{c.client.user} {i}")
        total = per_client * len(clients)
        for c in clients:
            await c.wait_until(lambda c=c: len(lines_seen(c)) >= total, timeout=15)
        ordered = one_order(clients, total)
        assert sorted(lines_seen(alice)) == list(range(1, total + 1))  # the stream numbered them
        for c in clients:  # each author's lines in the order typed
            name = c.client.user
            assert [t for u, t in ordered if u == name] == [f"{name} {i}" for i in range(per_client)]
        # Both replicas hold the same history under the same seqs.
        assert a.relay.store.messages_after(ROOM, 0, 1000) == b.relay.store.messages_after(ROOM, 0, 1000)


async def test_a_resend_to_the_other_relay_is_stored_once(tmp_path: Path, nats_cluster: NatsCluster) -> None:
    a = await start_relay(tmp_path / "a", nats_cluster)
    b = await start_relay(tmp_path / "b", nats_cluster)
    alice = await connect(a.server, "alice", tmp_path=tmp_path)
    bob = await connect(b.server, "bob", tmp_path=tmp_path)
    # The same user on the other relay, about to send the same msg_id again: what a client does when
    # its relay died after storing the line but before its ACCEPTED arrived (protocol.md 22.4).
    again = await connect(b.server, "alice", tmp_path=tmp_path / "again")
    async with running(a, b, alice, bob, again):
        again.client.conn._msg_base = alice.client.conn._msg_base
        again.client.conn._msg_counter = alice.client.conn._msg_counter
        alice.client.submit("only once")
        first = await alice.wait_for(ev.MessageDelivered, timeout=10)
        again.client.submit("only once")
        resent = await again.wait_for(ev.MessageDelivered, timeout=10)
        assert resent.seq == first.seq and resent.local_id == first.local_id
        bob.client.submit("after it")
        # Confirmed once relay B read it back from the stream: B had read "only once" before it.
        await bob.wait_for(ev.MessageDelivered, lambda e: e.text == "after it", timeout=10)
        await alice.wait_for(ev.MessageReceived, lambda e: e.text == "after it", timeout=10)
        shown = [(e.seq, e.text) for e in bob.of(ev.MessageReceived) if not e.history]
        assert shown == [(first.seq, "only once")]
        info = await a.bridge.conn.js.stream_info(names.room_stream(ROOM))
        assert info.state.messages == 2  # "only once" and "after it"
        assert info.config.max_age == RelayConfig().retention.max_age_s  # --history-days, in the cluster too
        assert a.relay.store.find_message("alice", first.local_id) is not None
        assert len(b.relay.store.messages_after(ROOM, 0, 100)) == 2


@pytest.mark.parametrize("victim", ["stream leader", "reader's node"])
async def test_killing_a_nats_node_mid_stream_loses_nothing_confirmed(
    tmp_path: Path, nats_cluster: NatsCluster, victim: str
) -> None:
    a = await start_relay(tmp_path / "a", nats_cluster)
    b = await start_relay(tmp_path / "b", nats_cluster)
    alice = await connect(a.server, "alice", tmp_path=tmp_path)
    bob = await connect(b.server, "bob", tmp_path=tmp_path)
    async with running(a, b, alice, bob):
        count = 40
        for i in range(count // 2):
            alice.client.submit(f"line {i}")
        await alice.wait_until(lambda: len(alice.of(ev.MessageDelivered)) >= 5, timeout=10)
        # kill -9 while lines are on their way, of the node that leads the room's stream, or of the
        # one the other relay reads the stream through (its consumer dies with it)
        if victim == "stream leader":
            info = await a.bridge.conn.js.stream_info(names.room_stream(ROOM))
            assert info.cluster is not None and info.cluster.leader is not None
            nats_cluster.kill([n.name for n in nats_cluster.nodes].index(info.cluster.leader))
        else:
            url = b.bridge.conn.nc.connected_url
            assert url is not None
            nats_cluster.kill([n.client_port for n in nats_cluster.nodes].index(url.port))
        for i in range(count // 2, count):
            alice.client.submit(f"line {i}")
        await alice.wait_until(lambda: len(alice.of(ev.MessageDelivered)) == count, timeout=25)
        await bob.wait_until(lambda: len(lines_seen(bob)) >= count, timeout=15)
        ordered = one_order([alice, bob], count)
        assert ordered == [("alice", f"line {i}") for i in range(count)]


async def test_the_whole_nats_cluster_restarted_keeps_history(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a = await start_relay(tmp_path / "a", nats_cluster)
    b = await start_relay(tmp_path / "b", nats_cluster)
    alice = await connect(a.server, "alice", tmp_path=tmp_path)
    bob = await connect(b.server, "bob", tmp_path=tmp_path)
    async with running(a, b, alice, bob):
        for i in range(10):
            alice.client.submit(f"before {i}")
        await bob.wait_until(lambda: len(lines_seen(bob)) >= 10, timeout=10)
        # every node at once, then again on the same stores; in a thread, so that the relays and the
        # clients (on this event loop) keep running meanwhile, as they would beside a real cluster
        await asyncio.to_thread(nats_cluster.stop)
        await asyncio.to_thread(nats_cluster.start)
        # A relay that never saw the room reads its whole history from the restarted cluster before
        # it lets anyone in (logins wait meanwhile)...
        c = await start_relay(tmp_path / "c", nats_cluster)
        async with running(c):
            assert c.relay.rooms[ROOM].next_seq == 11
            # ...and a new client there is shown it on login, by the relay's own history rules, as
            # history: not as a flood of live lines.
            carol = await connect(c.server, "carol", tmp_path=tmp_path)
            async with running(carol):
                await carol.wait_until(
                    lambda: len([e for e in carol.of(ev.MessageReceived) if e.history]) >= 10, timeout=10
                )
                history = [(e.seq, e.text) for e in carol.of(ev.MessageReceived) if e.history]
                assert history == [(i + 1, f"before {i}") for i in range(10)]
                assert not [e for e in carol.of(ev.MessageReceived) if not e.history]
                # The old relays took up their streams again: the next line is #11 everywhere.
                bob.client.submit("after the restart")
                for cut in (alice, carol):
                    got = await cut.wait_for(ev.MessageReceived, lambda e: e.text == "after the restart", 20)
                    assert got.seq == 11


async def test_nats_unreachable_refuses_then_recovers(tmp_path: Path, nats_cluster: NatsCluster) -> None:
    a = await start_relay(tmp_path / "a", nats_cluster, publish_deadline_s=2.0)
    b = await start_relay(tmp_path / "b", nats_cluster, publish_deadline_s=2.0)
    alice = await connect(a.server, "alice", tmp_path=tmp_path)  # announces CAP_FAILOVER
    old_caps = ClientConfig().capabilities & ~m.CAP_FAILOVER
    carol = await connect(a.server, "carol", tmp_path=tmp_path, config=ClientConfig(capabilities=old_caps))
    bob = await connect(b.server, "bob", tmp_path=tmp_path)
    async with running(a, b, alice, carol, bob):
        alice.client.submit("before")
        await alice.wait_for(ev.MessageDelivered, lambda e: e.text == "before", timeout=10)
        await bob.wait_for(ev.MessageReceived, lambda e: e.text == "before", timeout=10)
        await asyncio.to_thread(nats_cluster.stop)  # the relays and clients run on meanwhile
        alice.client.submit("alice while the cluster is down")
        carol.client.submit("carol while the cluster is down")
        # Refused with "not now", said in words once; both clients keep the line: CLUSTER_UNAVAILABLE
        # for one that knows it (22.6), RATE_LIMITED for an older one.
        for cut, code in ((alice, ErrorCode.CLUSTER_UNAVAILABLE), (carol, ErrorCode.RATE_LIMITED)):
            notice = await cut.wait_for(ev.ServerNotice, lambda e: "cannot be stored" in e.text, timeout=10)
            assert notice.code == code
            assert not cut.of(ev.MessageFailed)
        assert a.relay.backplane is not None and a.relay.backplane.refused >= 2
        assert [e.text for e in alice.of(ev.MessageDelivered)] == ["before"]
        await asyncio.to_thread(nats_cluster.start)
        # Back by itself: the kept lines are resent, stored once, and reach the other relay.
        for cut in (alice, carol):
            text = f"{cut.client.user} while the cluster is down"
            delivered = await cut.wait_for(ev.MessageDelivered, lambda e, t=text: e.text == t, timeout=25)
            got = await bob.wait_for(ev.MessageReceived, lambda e, t=text: e.text == t, timeout=15)
            assert got.seq == delivered.seq
            assert not cut.of(ev.MessageFailed)
        assert sorted(lines_seen(bob)) == [1, 2, 3]


async def test_a_long_message_goes_through_the_cluster_whole(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    """A long message (section 15.2) travels as one stream message and is delivered whole."""
    a = await start_relay(tmp_path / "a", nats_cluster)
    b = await start_relay(tmp_path / "b", nats_cluster)
    alice = await connect(a.server, "alice", tmp_path=tmp_path)
    bob = await connect(b.server, "bob", tmp_path=tmp_path)
    async with running(a, b, alice, bob):
        text = "long line" * 1000
        alice.client.submit(text)
        got = await bob.wait_for(ev.MessageReceived, timeout=10)
        assert got.text == text
