"""Issue 'nobody on the LAN can read, forge or flood', with real processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
from pathlib import Path

import pytest

from labchat.netem import start_proxy

from .procs import PYTHON, env_for, spawn, start_client_proc, start_server_proc

pytestmark = pytest.mark.timeout(90)

PASSWORD = "correct horse battery"
SECRET_TEXT = "the exam answers are 42"


async def test_capture_shows_neither_password_nor_text(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path, "--quiet")
    capture = tmp_path / "capture.jsonl"
    proxy = await start_proxy(("127.0.0.1", 0), ("127.0.0.1", port), capture=capture, seed=1)
    try:
        ana = await start_client_proc(tmp_path, proxy.address[1], "ana", password=PASSWORD)
        await ana.expect("logged in")
        budi = await start_client_proc(tmp_path, proxy.address[1], "budi", password=PASSWORD)
        await budi.expect("logged in")
        ana.send(SECRET_TEXT)
        budi.send(f"/msg ana {SECRET_TEXT} privately")
        await budi.expect(SECRET_TEXT)
        await ana.expect("privately")
        for p in (ana, budi):
            p.send("QUIT")
            await p.wait()
    finally:
        await proxy.close()
        await server.kill()
    records = [json.loads(line) for line in capture.read_text().splitlines()]
    assert len(records) > 10
    wire = b"".join(bytes.fromhex(r["hex"]) for r in records)
    for needle in (
        PASSWORD,
        SECRET_TEXT,
        "exam",
        "budi",
        "lobby",
    ):  # no 3-byte needles: chance hits
        for encoding in ("utf-8", "utf-16-le"):
            assert needle.encode(encoding) not in wire, needle


async def test_replayed_and_forged_datagrams_are_never_shown(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path)
    captured: list[bytes] = []
    proxy = await start_proxy(
        ("127.0.0.1", 0),
        ("127.0.0.1", port),
        seed=1,
        on_datagram=lambda e: captured.append(e.data) if e.direction.value == "up" else None,
    )
    try:
        ana = await start_client_proc(tmp_path, proxy.address[1], "ana")
        await ana.expect("logged in")
        budi = await start_client_proc(tmp_path, port, "budi")  # directly, not through the proxy
        await budi.expect("logged in")
        await ana.expect("budi joined")
        ana.send("only once")
        await budi.expect("<ana> only once")
        # Replay every datagram ana ever sent, from a stranger's socket and three times over,
        # and a bit-flipped copy of each.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
            for _ in range(3):
                for data in captured:
                    attacker.sendto(data, ("127.0.0.1", port))
                    flipped = bytearray(data)
                    flipped[random.randrange(len(flipped))] ^= 0x20
                    attacker.sendto(bytes(flipped), ("127.0.0.1", port))
        budi.send("/who")
        await budi.expect("2 online")
        budi.send("after the replay")
        await ana.expect("<budi> after the replay")
        assert sum("only once" in line for line in budi.lines) == 1
        for p in (ana, budi):
            p.send("QUIT")
            await p.wait()
    finally:
        await proxy.close()
        await server.kill()


async def test_changed_server_key_stops_the_login(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    server, port = await start_server_proc(tmp_path, db=db)
    ana = await start_client_proc(tmp_path, port, "ana")
    first = await ana.expect(r"new server key (SHA256:\S+) pinned")
    ana.send("QUIT")
    await ana.wait()
    await server.kill()
    (tmp_path / "server.key").unlink()  # the server gets a new identity (or an impostor appears)
    server, port2 = await start_server_proc(tmp_path, db=db)
    ana = await spawn(
        PYTHON,
        "-m",
        "labchat.client",
        "127.0.0.1",
        str(port2),
        "0",
        "--plain",
        "--user",
        "ana",
        env=env_for(tmp_path),
    )
    # Different port: a different server entry; pin it, then come back after a key change on it.
    await ana.expect("pinned")
    ana.send("QUIT")
    await ana.wait()
    await server.kill()
    (tmp_path / "server.key").unlink()
    server, port3 = await start_server_proc(tmp_path, db=db, port=port2)
    ana = await start_client_proc(tmp_path, port3, "ana")
    warning = await ana.expect(
        r"error: the server's key has changed: expected (SHA256:\S+), got (SHA256:\S+)"
    )
    assert warning.group(1) != warning.group(2)
    assert first.group(1) != warning.group(2)
    assert await ana.wait() == 1
    assert not any("logged in" in line for line in ana.lines)
    again = await start_client_proc(tmp_path, port3, "ana", "--accept-new-server-key")
    await again.expect("logged in")
    again.send("QUIT")
    await again.wait()
    await server.kill()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_flood_does_not_crash_grow_or_stop_the_chat(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path, "--quiet")
    ana = await start_client_proc(tmp_path, port, "ana")
    await ana.expect("logged in")
    budi = await start_client_proc(tmp_path, port, "budi")
    await budi.expect("logged in")
    rng = random.Random(5)
    loop = asyncio.get_running_loop()

    def flood(count: int) -> None:
        hello = b"LC\x01\x01\x00" + bytes(32) + bytes(96)
        kinds = [
            lambda: os.urandom(rng.randrange(0, 1400)),
            lambda: b"LC\x01\x04" + os.urandom(rng.randrange(8, 1200)),
            lambda: b"LC\x01\x01\x00" + os.urandom(32) + bytes(96),  # handshakes: state per HELLO?
            lambda: hello[: rng.randrange(len(hello))],
            lambda: os.urandom(9000),
        ]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            for i in range(count):
                with contextlib.suppress(BlockingIOError):
                    s.sendto(kinds[i % len(kinds)](), ("127.0.0.1", port))

    await loop.run_in_executor(None, flood, 5000)
    rss_before = _rss_kib(server.proc.pid)
    flooding = loop.run_in_executor(None, flood, 30000)
    for i in range(20):
        ana.send(f"during the flood {i}")
    await budi.expect("during the flood 19", timeout=30)
    await flooding
    rss_after = _rss_kib(server.proc.pid)
    assert rss_after - rss_before < 20_000, (
        rss_before,
        rss_after,
    )  # KiB: bounded, not per datagram
    assert server.proc.returncode is None
    budi.send("still fine")
    await ana.expect("<budi> still fine")
    for p in (ana, budi):
        p.send("QUIT")
        await p.wait()
    server.proc.terminate()
    assert await server.wait() == 0
