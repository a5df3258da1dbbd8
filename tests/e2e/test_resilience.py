"""Issue 'never lose a message', with real processes: a server, --json clients, and labchat-netem
between them making the network bad on purpose."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from labchat.netem import ImpairmentConfig, start_proxy

from .procs import Proc, join_through_loss, start_client_proc, start_server_proc

pytestmark = pytest.mark.timeout(150)


def messages(proc: Proc) -> list[dict]:  # type: ignore[type-arg]
    return proc.events("message")


async def wait_count(proc: Proc, n: int, timeout: float) -> None:
    async def poll() -> None:
        while len(messages(proc)) < n:
            if proc._reader.done():
                raise AssertionError(f"client ended early: {proc.lines[-5:]}")
            proc._new.clear()
            await proc._new.wait()

    await asyncio.wait_for(poll(), timeout)


async def test_three_clients_through_a_bad_network(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path, "--quiet")
    bad = ImpairmentConfig(loss=0.2, duplicate=0.05, reorder=0.05, delay=0.001, jitter=0.001)
    proxy = await start_proxy(("127.0.0.1", 0), ("127.0.0.1", port), up=bad, down=bad, seed=7)
    users = ["ana", "budi", "citra"]
    clients = {}
    try:
        for u in users:
            clients[u] = await join_through_loss(tmp_path, proxy.address[1], u)
        for i in range(200):
            for u in users:
                clients[u].send(f"{u} {i}")
        for u in users:
            await wait_count(clients[u], 600, timeout=90)
        logs = {
            u: [(m["seq"], m["user"] or u, m["text"]) for m in messages(clients[u])] for u in users
        }
        assert logs["ana"] == logs["budi"] == logs["citra"]
        seqs = [s for s, _, _ in logs["ana"]]
        assert len(seqs) == 600 == len(set(seqs)) and seqs == sorted(seqs)
        for u in users:
            mine = [t for _, who, t in logs["ana"] if who == u]
            assert mine == [f"{u} {i}" for i in range(200)]
        assert proxy.stats.up.dropped > 0 and proxy.stats.down.duplicated > 0
        for u in users:
            clients[u].send("QUIT")
            await clients[u].wait(15)
    finally:
        await proxy.close()
        for p in clients.values():
            await p.kill()
        await server.kill()


async def test_server_killed_and_restarted(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    server, port = await start_server_proc(tmp_path, "--quiet", db=db)
    ana = await start_client_proc(tmp_path, port, "ana", "--json")
    await ana.expect_json(type="presence")
    budi = await start_client_proc(tmp_path, port, "budi", "--json")
    await budi.expect_json(type="presence")
    try:
        for i in range(20):
            ana.send(f"before {i}")
        await wait_count(ana, 20, 15)  # all 20 confirmed to the sender
        server.proc.send_signal(signal.SIGKILL)
        await server.wait()
        await ana.expect_json(type="system", state="reconnecting", timeout=15)
        ana.send("during the outage")
        budi.send("me too")
        restarted, _ = await start_server_proc(tmp_path, "--quiet", db=db, port=port)
        await wait_count(budi, 22, 30)
        await wait_count(ana, 22, 30)
        texts = [m["text"] for m in messages(budi)]
        assert texts == [f"before {i}" for i in range(20)] + ["during the outage", "me too"] or (
            texts == [f"before {i}" for i in range(20)] + ["me too", "during the outage"]
        )
        ana.send("QUIT")
        budi.send("QUIT")
        await ana.wait(15)
        await budi.wait(15)
        await restarted.kill()
    finally:
        for p in (ana, budi):
            await p.kill()


async def test_vanished_client_leaves_within_the_timeout(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path, "--client-timeout", "2")
    ana = await start_client_proc(tmp_path, port, "ana")
    await ana.expect("logged in")
    budi = await start_client_proc(tmp_path, port, "budi")
    await ana.expect("budi joined")
    budi.proc.send_signal(signal.SIGKILL)  # no goodbye
    await budi.wait()
    await ana.expect(r"\* budi left \(timed out\)", timeout=10)
    ana.send("QUIT")
    await ana.wait()
    await server.kill()
