"""`labchat-server --cluster` relays as real processes: one set of people across them, kill -9 included."""

from __future__ import annotations

import sys
from pathlib import Path

from labchat.client.core import ChatClient
from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from labchat.protocol.errors import ErrorCode
from tests.e2e.procs import Proc, env_for, spawn
from tests.helpers import ClientUnderTest
from tests.nats_cluster import NatsCluster

#: The relays' client timeout: also how long a killed relay's people stay listed elsewhere.
TIMEOUT_S = 6


async def start_relay_proc(tmp_path: Path, name: str, nats: NatsCluster, key: Path) -> tuple[Proc, int]:
    proc = await spawn(
        sys.executable, "-m", "labchat.server", "127.0.0.1", "-p", "0", "--db", str(tmp_path / f"{name}.db"),
        "--key", str(key), "--cluster", nats.url_list, "--client-timeout", str(TIMEOUT_S),
        env=env_for(tmp_path / name, None),
    )  # fmt: skip
    match = await proc.expect(r"listening on UDP 127\.0\.0\.1:(\d+)", timeout=20)
    await proc.expect(r"server key fingerprint", timeout=20)
    return proc, int(match.group(1))


async def client(tmp_path: Path, port: int, user: str) -> ClientUnderTest:
    known = KnownServers(tmp_path / f"known-{user}-{port}")
    cut = await ClientUnderTest(ChatClient("127.0.0.1", port, user, "secret", known_servers=known)).start()
    await cut.wait_for(ev.LoggedIn, timeout=10)
    return cut


async def test_people_across_relay_processes_and_a_relay_killed(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    key = tmp_path / "cluster.key"
    relay_a, port_a = await start_relay_proc(tmp_path, "a", nats_cluster, key)
    relay_b, port_b = await start_relay_proc(tmp_path, "b", nats_cluster, key)
    cuts: list[ClientUnderTest] = []
    try:
        alice = await client(tmp_path, port_a, "alice")
        bob = await client(tmp_path, port_b, "bob")
        carol = await client(tmp_path, port_b, "carol")
        cuts += [alice, bob, carol]
        await alice.wait_for(ev.UserJoined, lambda e: e.user == "carol", timeout=10)
        alice.client.submit("/msg bob across the cluster")
        got = await bob.wait_for(ev.PrivateReceived, timeout=10)
        assert (got.sender, got.text) == ("alice", "across the cluster")
        # bob logs in again, on relay A: his session on B ends as on a single server
        bob_again = await client(tmp_path, port_a, "bob")
        cuts.append(bob_again)
        closed = await bob.wait_for(ev.Closed, timeout=10)
        assert closed.code == ErrorCode.REPLACED
        # kill -9 of relay B: carol, who was on it, leaves alice's list once her entry expires
        await relay_b.kill()
        left = await alice.wait_for(ev.UserLeft, lambda e: e.user == "carol", timeout=3 * TIMEOUT_S)
        assert left.reason == "timed out"
        assert not [e for e in alice.of(ev.UserLeft) if e.user == "bob"]  # bob moved, never left
    finally:
        for cut in cuts:
            await cut.close()
        await relay_b.kill()
        relay_a.proc.terminate()
        await relay_a.wait(timeout=10)
