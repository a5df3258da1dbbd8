"""Path validation with real processes: an attacker who sees a client's datagrams and resends copies
of them from its own address, each copy arriving before the original, must neither black the client
out nor get more than 3x what it sent (docs/protocol.md 4.6, docs/security.md).

The forwarder below sits between a real `labchat --json` client and a real server. Every datagram
the client sends goes to the server twice: first a copy from the attacker's socket, then the
original from the forwarder's own socket (the client's address as the server knows it). Before path
validation, the first copy moved the session to the attacker and the client heard nothing until its
next keepalive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from .procs import Proc, start_client_proc, start_server_proc

pytestmark = pytest.mark.timeout(120)

LINES = 80
LINE_INTERVAL_S = 0.1
#: The largest gap between two lines allowed: far below the keepalive interval (8 s) that a broken
#: move or a copy flood would cost, far above a loaded machine's own pauses.
STALL_BOUND_S = 3.0


@dataclass
class _Counts:
    copies_sent: int = 0
    copy_bytes_sent: int = 0
    attacker_datagrams_received: int = 0
    attacker_bytes_received: int = 0
    received_kinds: dict[int, int] = field(default_factory=dict)


class _Socket(asyncio.DatagramProtocol):
    """A UDP socket whose datagrams go to a callback."""

    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)


class CopyingForwarder:
    """Client <-> front | back <-> server, plus an attacker socket that resends copies (unless
    `copying` is off)."""

    def __init__(self, server: tuple[str, int], *, copying: bool = True) -> None:
        self.server = server
        self.copying = copying
        self.client_addr: tuple[str, int] | None = None
        self.counts = _Counts()
        self.front = _Socket(self._from_client)
        self.back = _Socket(self._from_server)
        self.attacker = _Socket(self._to_attacker)

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        for sock in (self.front, self.back, self.attacker):
            await loop.create_datagram_endpoint(lambda s=sock: s, local_addr=("127.0.0.1", 0))  # type: ignore[misc]
        assert self.front.transport is not None
        return int(self.front.transport.get_extra_info("sockname")[1])

    async def rebind(self) -> None:
        """Send to the server from a new socket and close the old one: a NAT rebinding or a
        new network, as far as the server can tell (the client itself notices nothing)."""
        old = self.back
        self.back = _Socket(self._from_server)
        await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: self.back, local_addr=("127.0.0.1", 0)
        )
        if old.transport is not None:
            old.transport.close()

    def close(self) -> None:
        for sock in (self.front, self.back, self.attacker):
            if sock.transport is not None:
                sock.transport.close()

    def _from_client(self, data: bytes, addr: tuple[str, int]) -> None:
        self.client_addr = addr
        assert self.attacker.transport is not None and self.back.transport is not None
        if self.copying and len(data) >= 4 and data[3] != 1:  # a copy of a session datagram races it
            self.attacker.transport.sendto(data, self.server)
            self.counts.copies_sent += 1
            self.counts.copy_bytes_sent += len(data)
        self.back.transport.sendto(data, self.server)

    def _from_server(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.client_addr is not None and self.front.transport is not None:
            self.front.transport.sendto(data, self.client_addr)

    def _to_attacker(self, data: bytes, addr: tuple[str, int]) -> None:
        """What the server sends the attacker: it cannot read it, and does not answer."""
        self.counts.attacker_datagrams_received += 1
        self.counts.attacker_bytes_received += len(data)
        kind = data[3] if len(data) >= 4 else -1
        self.counts.received_kinds[kind] = self.counts.received_kinds.get(kind, 0) + 1


def _texts(proc: Proc) -> list[str]:
    return [event["text"] for event in proc.events("message")]


async def _arrival_times(proc: Proc, prefix: str, count: int, timeout: float) -> list[float]:
    """When each of `prefix 0` .. `prefix count-1` was first seen on the process's stdout."""
    times: dict[str, float] = {}
    wanted = {f"{prefix} {i}" for i in range(count)}

    async def poll() -> None:
        while len(times) < count:
            now = time.monotonic()
            for text in _texts(proc):
                if text in wanted and text not in times:
                    times[text] = now
            if len(times) == count:
                return
            if proc._reader.done():
                raise AssertionError(f"client ended early: {proc.lines[-5:]}")
            proc._new.clear()
            await proc._new.wait()

    await asyncio.wait_for(poll(), timeout)
    return [times[f"{prefix} {i}"] for i in range(count)]


async def test_racing_copies_neither_black_out_the_client_nor_amplify(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path, "--quiet")
    forwarder = CopyingForwarder(("127.0.0.1", port))
    front_port = await forwarder.start()
    try:
        ana = await start_client_proc(tmp_path, front_port, "ana", "--json")  # behind the forwarder
        await ana.expect_json(type="presence", timeout=30)
        budi = await start_client_proc(tmp_path, port, "budi", "--json")  # directly
        await budi.expect_json(type="presence", timeout=30)

        async def talk(proc: Proc, prefix: str) -> float:
            start = time.monotonic()
            for i in range(LINES):
                proc.send(f"{prefix} {i}")
                await asyncio.sleep(LINE_INTERVAL_S)  # a steady conversation, not a synchronisation
            return start

        start, _, ana_times, budi_times = await asyncio.gather(
            talk(budi, "from budi"),
            talk(ana, "from ana"),
            _arrival_times(ana, "from budi", LINES, timeout=60),
            _arrival_times(budi, "from ana", LINES, timeout=60),
        )
        gaps = [b - a for a, b in zip([start, *ana_times], ana_times, strict=False)]
        sent_gaps = [b - a for a, b in zip([start, *budi_times], budi_times, strict=False)]
        counts = forwarder.counts
        print(
            f"\ncopies sent by the attacker: {counts.copies_sent} ({counts.copy_bytes_sent} B); "
            f"server -> attacker: {counts.attacker_datagrams_received} datagrams "
            f"({counts.attacker_bytes_received} B, kinds {counts.received_kinds}); largest gap "
            f"between lines: {max(gaps):.3f} s received by ana, {max(sent_gaps):.3f} s sent by ana"
        )
        # the defect this guards against is a blackout of a keepalive interval (8 s); a loaded
        # machine's own stalls of a second or so are not it
        assert max(gaps) < STALL_BOUND_S, gaps
        assert max(sent_gaps) < STALL_BOUND_S, sent_gaps
        assert counts.copies_sent > LINES
        assert counts.attacker_bytes_received <= 3 * counts.copy_bytes_sent
        assert set(counts.received_kinds) <= {6}  # challenges only, never chat traffic
        assert sorted(_texts(ana).count(f"from budi {i}") for i in range(LINES)) == [1] * LINES
        for proc in (ana, budi):
            proc.send("QUIT")
            await proc.wait(timeout=20)
    finally:
        forwarder.close()
        await server.kill()


async def test_a_client_whose_address_changes_moves_after_one_round_trip(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path, "--quiet")
    forwarder = CopyingForwarder(("127.0.0.1", port), copying=False)
    front_port = await forwarder.start()
    try:
        ana = await start_client_proc(tmp_path, front_port, "ana", "--json")  # behind the forwarder
        await ana.expect_json(type="presence", timeout=30)
        budi = await start_client_proc(tmp_path, port, "budi", "--json")
        await budi.expect_json(type="presence", timeout=30)

        async def talk(proc: Proc, prefix: str) -> float:
            start = time.monotonic()
            for i in range(LINES // 2):
                if i == LINES // 4 and proc is ana:
                    await forwarder.rebind()
                proc.send(f"{prefix} {i}")
                await asyncio.sleep(LINE_INTERVAL_S)
            return start

        start, _, ana_times, budi_times = await asyncio.gather(
            talk(budi, "from budi"),
            talk(ana, "from ana"),
            _arrival_times(ana, "from budi", LINES // 2, timeout=60),
            _arrival_times(budi, "from ana", LINES // 2, timeout=60),
        )
        gaps = [b - a for a, b in zip([start, *ana_times], ana_times, strict=False)]
        sent_gaps = [b - a for a, b in zip([start, *budi_times], budi_times, strict=False)]
        print(f"\nafter the move: largest gap {max(gaps):.3f} s received, {max(sent_gaps):.3f} s sent")
        assert max(gaps) < STALL_BOUND_S and max(sent_gaps) < STALL_BOUND_S, (gaps, sent_gaps)
        # The same session moved: no stall shown, no second login.
        assert not any("reconnect" in line for line in ana.lines), ana.lines
        for proc in (ana, budi):
            proc.send("QUIT")
            await proc.wait(timeout=20)
    finally:
        forwarder.close()
        await server.kill()
