"""The relay directory (cluster/directory.py) on a real three-node JetStream cluster: relays learn
each other's client addresses, a clean stop is seen at once, a kill -9 after the TTL, and a relay
tells its logged-in clients (RELAYS, docs/protocol.md 22.2)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from labchat.server.cluster import names
from labchat.server.cluster.connection import ClusterConnection
from labchat.server.cluster.directory import RelayDirectory, client_address, decode_address, encode_address
from tests.helpers import connect, start_server
from tests.nats_cluster import NatsCluster

Address = tuple[str, int]
FAST = {"ttl_s": 1.5, "refresh_s": 0.3}
#: For the test that times a clean stop against an expiry: wide enough apart that a loaded machine's
#: slow bucket writes (three NATS nodes, three directories on one event loop) cannot blur them.
TIMED = {"ttl_s": 5.0, "refresh_s": 1.0}


class Seen:
    """The lists a directory reported, awaitable."""

    def __init__(self) -> None:
        self.lists: list[tuple[Address, ...]] = []
        self._changed = asyncio.Event()

    def __call__(self, addresses: tuple[Address, ...]) -> None:
        self.lists.append(addresses)
        self._changed.set()

    async def until(self, want: tuple[Address, ...], timeout: float = 10.0) -> None:
        async def wait() -> None:
            while not self.lists or self.lists[-1] != want:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)


A: Address = ("10.0.0.1", 8080)
B: Address = ("10.0.0.2", 8080)
C: Address = ("relay-c.lab", 9000)


async def test_relays_find_each_other_and_see_them_go(nats_cluster: NatsCluster) -> None:
    conns = [await ClusterConnection.connect(nats_cluster.urls) for _ in range(3)]
    seen_a, seen_b, seen_c = Seen(), Seen(), Seen()
    a = RelayDirectory(conns[0], A, seen_a, **TIMED)  # type: ignore[arg-type]
    b = RelayDirectory(conns[1], B, seen_b, **TIMED)  # type: ignore[arg-type]
    c = RelayDirectory(conns[2], C, seen_c, **TIMED)  # type: ignore[arg-type]
    try:
        await a.start()
        assert seen_a.lists == [()]  # one of several from the start, nobody else yet
        await b.start()
        await seen_a.until((B,))
        await seen_b.until((A,))
        await c.start()
        await seen_a.until((B, C))
        await seen_c.until((A, B))
        loop = asyncio.get_running_loop()
        began = loop.time()
        await c.stop()  # a clean stop deletes its entry: the others drop it at once
        await seen_a.until((B,), timeout=TIMED["ttl_s"])
        # sooner than the entry could have expired (its last refresh was at most refresh_s ago)
        assert loop.time() - began < TIMED["ttl_s"] - TIMED["refresh_s"]
        # kill -9 of b: no more heartbeats, nothing deleted; the TTL takes it out.
        for task in b._tasks:
            task.cancel()
        await conns[1].nc.close()
        began = loop.time()
        await seen_a.until((), timeout=20.0)
        assert loop.time() - began >= TIMED["ttl_s"] - 2 * TIMED["refresh_s"] - 1.0
    finally:
        for directory in (a, b, c):
            await directory.stop()
        for conn in conns:
            await conn.close()


async def test_a_value_that_is_not_an_address_is_ignored(nats_cluster: NatsCluster) -> None:
    conn = await ClusterConnection.connect(nats_cluster.urls)
    seen = Seen()
    directory = RelayDirectory(conn, A, seen, **FAST)  # type: ignore[arg-type]
    try:
        await directory.start()
        kv = await conn.bucket(names.RELAYS_BUCKET, ttl_s=FAST["ttl_s"])
        await kv.put("junk", b"not an address")
        await kv.put("other", encode_address(B))
        await seen.until((B,))
        assert all(s in ((), (B,)) for s in seen.lists)
    finally:
        await directory.stop()
        await conn.close()


def test_the_address_told_to_clients() -> None:
    assert client_address(None, ("10.0.0.1", 8080)) == ("10.0.0.1", 8080)
    assert client_address(None, ("0.0.0.0", 8080)) is None and client_address(None, ("::", 8080)) is None
    assert client_address(("lab-1.school", 8080), ("0.0.0.0", 8080)) == ("lab-1.school", 8080)


def test_addresses_round_trip_and_junk_is_refused() -> None:
    for address in (A, C, ("::1", 8080), ("fe80::1", 1)):
        assert decode_address(encode_address(address)) == address
    for junk in (b"", b"host", b"host:0", b"host:99999", b"bad host:80", b"\xff:80", b":80", b"h:8a"):
        assert decode_address(junk) is None


async def test_a_relay_tells_its_clients_where_the_others_are(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    server = await start_server(tmp_path)
    conns = [await ClusterConnection.connect(nats_cluster.urls) for _ in range(2)]
    other = RelayDirectory(conns[1], B, Seen(), **FAST)  # type: ignore[arg-type]
    ana = await connect(server, "ana", tmp_path=tmp_path)
    mine = await RelayDirectory.attach(conns[0], server, **FAST)
    try:
        await other.start()
        await asyncio.wait_for(_poll(lambda: ana.client.conn.addresses == (server.address, B)), 10)
        await other.stop()
        await asyncio.wait_for(_poll(lambda: ana.client.conn.addresses == (server.address,)), 10)
    finally:
        await mine.stop()
        await other.stop()
        await ana.close()
        for conn in conns:
            await conn.close()
        await server.stop(grace_s=0)


async def _poll(done: Callable[[], bool]) -> None:
    """RELAYS changes no event the client reports: look after each pass of the loop."""
    while not done():
        await asyncio.sleep(0.01)
