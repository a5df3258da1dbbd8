"""The same behaviour on both backplanes: a single server (its own SQLite numbers and stores room
messages) and a relay of a cluster (JetStream numbers and stores them, the relay keeps a replica).

Every test here runs twice, once per backplane, with real clients on real UDP; what users see must
not depend on where room order and durability come from (docs/cluster.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from labchat.protocol import events as ev
from labchat.server.transport import RelayServer
from tests.cluster.test_relays import ClusterRelay, lines_seen, one_order, start_relay
from tests.helpers import connect, start_server
from tests.nats_cluster import NatsCluster

StartRelay = Callable[..., Awaitable[RelayServer]]


@pytest.fixture(params=["sqlite", "nats"])
async def start(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StartRelay]:
    """`await start(**config)`: a relay on this test's backplane (the cluster is started only for
    the NATS run)."""
    nats: NatsCluster | None = request.getfixturevalue("nats_cluster") if request.param == "nats" else None
    running: list[RelayServer | ClusterRelay] = []

    async def start_one(**overrides: object) -> RelayServer:
        base = tmp_path / f"relay{len(running)}"
        base.mkdir()
        if nats is None:
            server = await start_server(base, **overrides)
            running.append(server)
            return server
        relay = await start_relay(base, nats, **overrides)
        running.append(relay)
        return relay.server

    yield start_one
    for item in reversed(running):
        if isinstance(item, ClusterRelay):
            await item.stop()
        else:
            await item.stop(grace_s=0)


async def test_everyone_sees_every_line_once_in_one_order(start: StartRelay, tmp_path: Path) -> None:
    server = await start()
    alice = await connect(server, "alice", tmp_path=tmp_path)
    bob = await connect(server, "bob", tmp_path=tmp_path)
    try:
        for i in range(20):
            alice.client.submit(f"alice {i}")
            bob.client.submit(f"bob {i}")
        for cut in (alice, bob):
            await cut.wait_until(lambda cut=cut: len(lines_seen(cut)) >= 40, timeout=15)
        ordered = one_order([alice, bob], 40)
        assert sorted(lines_seen(alice)) == list(range(1, 41))
        for name in ("alice", "bob"):
            assert [t for u, t in ordered if u == name] == [f"{name} {i}" for i in range(20)]
    finally:
        await alice.close()
        await bob.close()


async def test_a_line_resent_after_a_reconnect_is_stored_once(start: StartRelay, tmp_path: Path) -> None:
    server = await start()
    alice = await connect(server, "alice", tmp_path=tmp_path)
    bob = await connect(server, "bob", tmp_path=tmp_path)
    again = None
    try:
        base, counter = alice.client.conn._msg_base, alice.client.conn._msg_counter
        alice.client.submit("once")
        first = await alice.wait_for(ev.MessageDelivered, timeout=10)
        await alice.close()
        # The same client after a restart, resending the line whose ACCEPTED it never saw.
        again = await connect(server, "alice", tmp_path=tmp_path / "again")
        again.client.conn._msg_base, again.client.conn._msg_counter = base, counter
        again.client.submit("once")
        resent = await again.wait_for(ev.MessageDelivered, timeout=10)
        assert (resent.seq, resent.local_id) == (first.seq, first.local_id)
        bob.client.submit("after")
        await bob.wait_for(ev.MessageDelivered, timeout=10)
        assert [(e.seq, e.text) for e in bob.of(ev.MessageReceived) if not e.history] == [(first.seq, "once")]
        assert [m.text for m in server.relay.store.messages_after("lobby", 0, 10)] == ["once", "after"]
    finally:
        for cut in (alice, bob, again):
            if cut is not None:
                await cut.close()


async def test_a_newcomer_gets_history_pages_and_search(start: StartRelay, tmp_path: Path) -> None:
    server = await start(history_on_join=10)
    alice = await connect(server, "alice", tmp_path=tmp_path)
    carol = None
    try:
        for i in range(30):
            alice.client.submit(f"line {i} word{i}")
        await alice.wait_until(lambda: len(alice.of(ev.MessageDelivered)) == 30, timeout=15)
        carol = await connect(server, "carol", tmp_path=tmp_path)
        await carol.wait_until(lambda: len([e for e in carol.of(ev.MessageReceived) if e.history]) >= 10)
        shown = [(e.seq, e.text) for e in carol.of(ev.MessageReceived) if e.history]
        assert shown == [(i + 1, f"line {i} word{i}") for i in range(20, 30)]
        carol.client.submit("/history 10")
        page = await carol.wait_for(ev.HistoryPage, timeout=10)
        older = [(i + 1, f"line {i} word{i}") for i in range(10, 20)]
        assert [(e.seq, e.text) for e in page.messages] == older
        assert page.more
        carol.client.submit("/search word7")
        results = await carol.wait_for(ev.SearchResults, timeout=10)
        assert [(hit.seq, hit.user) for hit in results.hits] == [(8, "alice")]
    finally:
        await alice.close()
        if carol is not None:
            await carol.close()
