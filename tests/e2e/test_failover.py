"""Issue 17, the client's part, with real processes and no cluster: a server (SQLite) killed with
kill -9 while a client sends, the same database and key served on another port, and clients started
with `--fallback` of that port move there by themselves; every line typed arrives once, in order."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import pytest

from labchat.netem import ImpairmentConfig, start_proxy

from .procs import Proc, start_client_proc, start_server_proc

pytestmark = pytest.mark.timeout(150)

LINES = 60


def free_udp_port() -> int:
    """A port nothing listens on now: the second server takes it after the first is killed."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_messages(proc: Proc, n: int, timeout: float) -> list[dict]:  # type: ignore[type-arg]
    async def poll() -> None:
        while len(proc.events("message")) < n:
            if proc._reader.done():
                raise AssertionError(f"client ended early: {proc.lines[-5:]}")
            proc._new.clear()
            await proc._new.wait()

    await asyncio.wait_for(poll(), timeout)
    return proc.events("message")


async def failover_scenario(tmp_path: Path, loss: float) -> None:
    """Two line-mode clients on a server that is killed (-9) while one of them types; the same
    database and key come back on the port the clients have as `--fallback`. With `loss`, each
    server sits behind its own labchat-netem proxy that drops that share of datagrams both ways."""
    db = tmp_path / "server.db"
    server, port = await start_server_proc(tmp_path, "--quiet", db=db)
    spare = free_udp_port()
    proxies = []
    if loss:
        bad = ImpairmentConfig(loss=loss, delay=0.001, jitter=0.001)
        for target, seed in ((port, 1), (spare, 2)):
            proxy = await start_proxy(("127.0.0.1", 0), ("127.0.0.1", target), up=bad, down=bad, seed=seed)
            proxies.append(proxy)
        port, relay_port = proxies[0].address[1], proxies[1].address[1]
    else:
        relay_port = spare
    fallback = f"127.0.0.1:{relay_port}"
    ana = await start_client_proc(tmp_path, port, "ana", "--json", "--fallback", fallback)
    await ana.expect_json(type="presence", timeout=30)
    budi = await start_client_proc(tmp_path, port, "budi", "--plain", "--fallback", fallback)
    await budi.expect(r"logged in as budi", timeout=30)
    moved = None
    try:
        for i in range(LINES // 2):
            ana.send(f"line {i}")
        await wait_messages(ana, 5, 30)  # the server is storing them: kill it in the middle
        # ...once budi has shown one of them: a member that has seen nothing of a room yet resumes
        # as a newcomer does (8.4: the last 50 as history, older ones by /history), which is not
        # what this test is about.
        await budi.expect(r"<ana> line \d+$", timeout=30)
        server.proc.send_signal(signal.SIGKILL)
        await server.wait()
        for i in range(LINES // 2, LINES):
            ana.send(f"line {i}")  # typed while its server is gone
        moved, _ = await start_server_proc(tmp_path, "--quiet", db=db, port=spare)
        relay = await ana.expect_json(type="relay", timeout=40)
        assert relay["port"] == relay_port and relay["text"] == f"moved to {fallback}"
        await budi.expect(rf"-!- moved to 127\.0\.0\.1:{relay_port}$", timeout=40)
        sent = await wait_messages(ana, LINES, 60)
        # Every line confirmed to its author once, in the order typed, with rising seqs.
        assert [m["text"] for m in sent] == [f"line {i}" for i in range(LINES)]
        seqs = [m["seq"] for m in sent]
        assert seqs == sorted(seqs) and len(set(seqs)) == LINES
        # ...and shown to the other member once, in that order (no [history] repeats).
        await budi.expect(rf"<ana> line {LINES - 1}$", timeout=60)
        shown = [line.split("<ana> ", 1)[1] for line in budi.lines if "<ana> " in line]
        assert shown == [f"line {i}" for i in range(LINES)]
        # The loss was real (the seeded fates drop some of the first datagrams on each path).
        assert not loss or sum(p.stats.up.dropped + p.stats.down.dropped for p in proxies) > 0
        ana.send("QUIT")
        budi.send("QUIT")
        assert await ana.wait(20) == 0
        assert await budi.wait(20) == 0
    finally:
        for proxy in proxies:
            await proxy.close()
        for p in (ana, budi):
            await p.kill()
        await server.kill()
        if moved is not None:
            await moved.kill()


async def test_a_killed_server_is_left_for_the_fallback_and_nothing_is_lost(tmp_path: Path) -> None:
    await failover_scenario(tmp_path, loss=0.0)


async def test_the_same_through_ten_percent_loss(tmp_path: Path) -> None:
    """Issue 17: "through labchat-netem at 10 % loss between clients and relays, the same result"."""
    await failover_scenario(tmp_path, loss=0.10)


async def test_a_bad_fallback_is_one_line(tmp_path: Path) -> None:
    for value, words in (("nowhere", "HOST:PORT"), ("10.0.0.2:0", "HOST:PORT"), ("::1:8080", "[::1]:8080")):
        proc = await start_client_proc(tmp_path, 8080, "ana", "--fallback", value)
        assert await proc.wait(10) == 2
        err = (await proc.stderr()).strip()
        assert err.count("\n") == 0 and err.startswith("labchat: invalid address") and words in err, err
