"""Issue 17, the client's part, with real processes and no cluster: a server (SQLite) killed with
kill -9 while a client sends, the same database and key served on another port, and clients started
with `--fallback` of that port move there by themselves; every line typed arrives once, in order."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import pytest

from .procs import Proc, start_client_proc, start_server_proc

pytestmark = pytest.mark.timeout(90)

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


async def test_a_killed_server_is_left_for_the_fallback_and_nothing_is_lost(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    server, port = await start_server_proc(tmp_path, "--quiet", db=db)
    spare = free_udp_port()
    fallback = f"127.0.0.1:{spare}"
    ana = await start_client_proc(tmp_path, port, "ana", "--json", "--fallback", fallback)
    await ana.expect_json(type="presence", timeout=15)
    budi = await start_client_proc(tmp_path, port, "budi", "--plain", "--fallback", fallback)
    await budi.expect(r"logged in as budi", timeout=15)
    moved = None
    try:
        for i in range(LINES // 2):
            ana.send(f"line {i}")
        await wait_messages(ana, 5, 15)  # the server is storing them: kill it in the middle
        server.proc.send_signal(signal.SIGKILL)
        await server.wait()
        for i in range(LINES // 2, LINES):
            ana.send(f"line {i}")  # typed while its server is gone
        moved, _ = await start_server_proc(tmp_path, "--quiet", db=db, port=spare)
        relay = await ana.expect_json(type="relay", timeout=30)
        assert relay["port"] == spare and relay["text"] == f"moved to {fallback}"
        await budi.expect(rf"-!- moved to 127\.0\.0\.1:{spare}$", timeout=30)
        sent = await wait_messages(ana, LINES, 30)
        # Every line confirmed to its author once, in the order typed, with rising seqs.
        assert [m["text"] for m in sent] == [f"line {i}" for i in range(LINES)]
        seqs = [m["seq"] for m in sent]
        assert seqs == sorted(seqs) and len(set(seqs)) == LINES
        # ...and shown to the other member once, in that order (no [history] repeats).
        await budi.expect(rf"<ana> line {LINES - 1}$", timeout=30)
        shown = [line.split("<ana> ", 1)[1] for line in budi.lines if "<ana> " in line]
        assert shown == [f"line {i}" for i in range(LINES)]
        ana.send("QUIT")
        budi.send("QUIT")
        assert await ana.wait(15) == 0
        assert await budi.wait(15) == 0
    finally:
        for p in (ana, budi):
            await p.kill()
        await server.kill()
        if moved is not None:
            await moved.kill()


async def test_a_bad_fallback_is_one_line(tmp_path: Path) -> None:
    for value, words in (("nowhere", "HOST:PORT"), ("10.0.0.2:0", "HOST:PORT"), ("::1:8080", "[::1]:8080")):
        proc = await start_client_proc(tmp_path, 8080, "ana", "--fallback", value)
        assert await proc.wait(10) == 2
        err = (await proc.stderr()).strip()
        assert err.count("\n") == 0 and err.startswith("labchat: invalid address") and words in err, err
