"""`labchat-server --cluster` as real processes: kill -9 of one relay while its client sends."""

from __future__ import annotations

import sys
from pathlib import Path

from labchat.client.core import ChatClient
from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from tests.cluster.test_relays import ROOM, lines_seen
from tests.e2e.procs import Proc, env_for, spawn
from tests.helpers import ClientUnderTest
from tests.nats_cluster import NatsCluster


async def start_relay_proc(tmp_path: Path, name: str, nats: NatsCluster, key: Path) -> tuple[Proc, int]:
    proc = await spawn(
        sys.executable, "-m", "labchat.server", "127.0.0.1", "-p", "0", "--db", str(tmp_path / f"{name}.db"),
        "--key", str(key), "--cluster", nats.url_list, env=env_for(tmp_path / name, None),
    )  # fmt: skip
    match = await proc.expect(r"listening on UDP 127\.0\.0\.1:(\d+)", timeout=20)
    await proc.expect(r"server key fingerprint", timeout=20)
    return proc, int(match.group(1))


async def client(tmp_path: Path, port: int, user: str) -> ClientUnderTest:
    known = KnownServers(tmp_path / f"known-{user}")
    cut = await ClientUnderTest(ChatClient("127.0.0.1", port, user, "secret", known_servers=known)).start()
    await cut.wait_for(ev.LoggedIn, timeout=10)
    return cut


async def test_kill_9_of_a_relay_while_its_client_sends(tmp_path: Path, nats_cluster: NatsCluster) -> None:
    key = tmp_path / "cluster.key"
    relay_a, port_a = await start_relay_proc(tmp_path, "a", nats_cluster, key)
    relay_b, port_b = await start_relay_proc(tmp_path, "b", nats_cluster, key)
    alice = bob = None
    try:
        alice = await client(tmp_path, port_a, "alice")
        bob = await client(tmp_path, port_b, "bob")
        sent = [f"line {i}" for i in range(100)]
        for text in sent:
            alice.client.submit(text)
        await alice.wait_until(lambda: len(alice.of(ev.MessageDelivered)) >= 20, timeout=15)
        await relay_a.kill()  # kill -9 while the rest are on their way
        confirmed = {e.text for e in alice.of(ev.MessageDelivered) if e.room == ROOM}
        assert len(confirmed) >= 20

        def shown() -> list[str]:
            return [text for _seq, (_user, text) in sorted(lines_seen(bob).items())]

        # Every line confirmed to alice reaches the other relay's members, once, in the order typed.
        await bob.wait_until(lambda: confirmed <= set(shown()), timeout=15)
        lines = shown()
        assert len(lines) == len(set(lines))
        assert lines == sorted(lines, key=sent.index)
        assert lines == sent[: len(lines)]  # nothing stored out of order or with a hole
    finally:
        for cut in (alice, bob):
            if cut is not None:
                await cut.close()
        await relay_a.kill()
        relay_b.proc.terminate()
        await relay_b.wait(timeout=10)
