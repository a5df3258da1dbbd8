"""Issue 17's acceptance test for failover: two relay processes on one NATS JetStream cluster,
kill -9 of the relay that holds a client while it sends 200 lines. The client moves to the other
relay by itself (it learned the address from RELAYS, docs/protocol.md 22), and every member, on
either relay, ends with all 200 lines once, in the order typed. Then the same through labchat-netem
at 10 % loss between the clients and each relay (each relay advertises its proxy's address)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from labchat.client.core import ChatClient
from labchat.client.known_servers import KnownServers
from labchat.netem import ImpairmentConfig, NetemProxy, start_proxy
from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.client import ClientConfig
from tests.e2e.procs import Proc, env_for, spawn
from tests.helpers import ClientUnderTest
from tests.nats_cluster import NatsCluster

ROOM = m.DEFAULT_ROOM
LINES = 200
#: The documented timers, but an idle member pings every 3 s, so that it notices its relay's death
#: (and moves) within 3 + 6 + 4 s rather than up to 18 s: the test stays short.
CONFIG = ClientConfig(keepalive_s=3.0)


async def start_relay_proc(
    tmp_path: Path, name: str, nats: NatsCluster, key: Path, *extra: str, port: int = 0
) -> tuple[Proc, int]:
    proc = await spawn(
        sys.executable, "-m", "labchat.server", "127.0.0.1", "-p", str(port),
        "--db", str(tmp_path / f"{name}.db"), "--key", str(key), "--cluster", nats.url_list, "--quiet",
        *extra, env=env_for(tmp_path / name, None),
    )  # fmt: skip
    match = await proc.expect(r"listening on UDP 127\.0\.0\.1:(\d+)", timeout=20)
    await proc.expect(r"server key fingerprint", timeout=20)
    return proc, int(match.group(1))


async def member(tmp_path: Path, port: int, user: str) -> ClientUnderTest:
    known = KnownServers(tmp_path / f"known-{user}")
    chat = ChatClient("127.0.0.1", port, user, "secret", known_servers=known, config=CONFIG)
    cut = await ClientUnderTest(chat).start()
    await cut.wait_for(ev.LoggedIn, timeout=15)
    return cut


def room_lines(cut: ClientUnderTest) -> dict[int, str]:
    """seq -> text of every room line this client showed or had confirmed; twice fails at once."""
    seen: dict[int, str] = {}
    for event in cut.seen:
        if isinstance(event, (ev.MessageReceived, ev.MessageDelivered)) and event.room == ROOM and event.seq:
            assert event.seq not in seen, f"{cut.client.user} was shown #{event.seq} twice"
            seen[event.seq] = event.text
    return seen


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("loss", [0.0, 0.10], ids=["clean", "netem-10pct"])
async def test_kill_9_of_the_relay_of_a_sending_client(
    tmp_path: Path, nats_cluster: NatsCluster, loss: float
) -> None:
    key = tmp_path / "cluster.key"
    proxies: list[NetemProxy] = []
    if loss:
        # Each relay behind its own lossy proxy, advertised so that RELAYS names the proxy.
        bad = ImpairmentConfig(loss=loss, delay=0.001, jitter=0.001)
        bound = [free_udp_port(), free_udp_port()]
        for seed, target in enumerate(bound, 1):
            proxy = await start_proxy(("127.0.0.1", 0), ("127.0.0.1", target), up=bad, down=bad, seed=seed)
            proxies.append(proxy)
        relays = [
            await start_relay_proc(tmp_path, name, nats_cluster, key, "--advertise",
                                   f"127.0.0.1:{proxy.address[1]}", port=target)
            for name, target, proxy in zip("ab", bound, proxies, strict=True)
        ]  # fmt: skip
        (relay_a, _), (relay_b, _) = relays
        port_a, port_b = (proxy.address[1] for proxy in proxies)
    else:
        relay_a, port_a = await start_relay_proc(tmp_path, "a", nats_cluster, key)
        relay_b, port_b = await start_relay_proc(tmp_path, "b", nats_cluster, key)
    members: list[ClientUnderTest] = []
    try:
        alice = await member(tmp_path, port_a, "alice")  # no --fallback: RELAYS says where to go
        carol = await member(tmp_path, port_a, "carol")  # a member on the same relay, idle
        bob = await member(tmp_path, port_b, "bob")  # a member on the other relay
        members = [alice, carol, bob]
        other = ("127.0.0.1", port_b)
        for cut in (alice, carol):
            await cut.wait_until(lambda c=cut: other in c.client.conn.addresses, timeout=15)  # type: ignore[misc]
        sent = [f"line {i}" for i in range(LINES)]
        for text in sent:
            alice.client.submit(text)
        await alice.wait_until(lambda: len(alice.of(ev.MessageDelivered)) >= 20, timeout=20)
        await relay_a.kill()  # kill -9 while the rest are on their way
        moved = await alice.wait_for(ev.RelayMoved, timeout=20)
        assert (moved.host, moved.port) == other
        await carol.wait_for(ev.RelayMoved, timeout=20)
        for cut in members:
            await cut.wait_until(lambda c=cut: len(room_lines(c)) >= LINES, timeout=30)  # type: ignore[misc]
        orders = []
        for cut in members:
            lines = room_lines(cut)
            assert [lines[seq] for seq in sorted(lines)] == sent, cut.client.user
            orders.append(sorted(lines))
        assert orders[0] == orders[1] == orders[2]  # one order, the same seqs, on both relays
        assert len(alice.of(ev.MessageDelivered)) == LINES and not alice.of(ev.MessageFailed)
        assert not loss or sum(p.stats.up.dropped + p.stats.down.dropped for p in proxies) > 0
    finally:
        for cut in members:
            await cut.close()
        for proxy in proxies:
            await proxy.close()
        await relay_a.kill()
        relay_b.proc.terminate()
        await relay_b.wait(timeout=15)
