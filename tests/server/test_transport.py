"""The server's asyncio shell around a real relay: what it runs besides moving datagrams."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from labchat.protocol import events as ev
from labchat.server import transport

from ..helpers import connect, start_server


async def test_database_is_checkpointed_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "CHECKPOINT_INTERVAL_S", 0.01)
    server = await start_server(tmp_path)
    try:
        alice = await connect(server, "alice", tmp_path=tmp_path)
        bob = await connect(server, "bob", tmp_path=tmp_path)
        alice.client.submit("kept on disk")
        await bob.wait_for(ev.MessageReceived)
        server.protocol.checkpointed.clear()
        await asyncio.wait_for(server.protocol.checkpointed.wait(), 10)
        # A checkpoint after the message copied everything the WAL held into the database file.
        log, copied = server.protocol.last_checkpoint
        assert log > 0 and copied == log
        for c in (alice, bob):
            await c.close()
    finally:
        await server.stop(grace_s=0)
    assert server.protocol.checkpoints >= 1


async def test_a_quiet_peer_amid_a_burst_is_answered_before_the_rest_of_the_burst(tmp_path: Path) -> None:
    """21.7: one read batch is answered in one flush, so the quiet peer's datagram gets its own flush
    as soon as another peer's burst shows (the datagrams here are junk: the relay drops them, which
    is all this needs: the order in which it is fed and flushed)."""
    server = await start_server(tmp_path)
    proto = server.protocol
    loop = asyncio.get_running_loop()
    seen: list[object] = []
    receive, flush = proto.relay.receive_datagram, proto.flush

    def fed(data: bytes, addr: tuple[str, int], now: float) -> None:
        seen.append(addr)
        receive(data, addr, now)

    def flushed() -> None:
        seen.append("flush")
        flush()

    proto.relay.receive_datagram = fed  # type: ignore[method-assign]
    proto.flush = flushed  # type: ignore[method-assign]
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        loop.remove_reader(proto.sock.fileno())  # the datagrams wait in the socket: one batch
        for sock in (busy, quiet):
            sock.bind(("127.0.0.1", 0))
        target = server.address
        quiet.sendto(b"early", target)  # before the burst shows
        for _ in range(20):
            busy.sendto(b"x" * 100, target)
        quiet.sendto(b"amid", target)  # after it showed
        for _ in range(20):
            busy.sendto(b"x" * 100, target)
        proto._on_readable()
        q, b = quiet.getsockname(), busy.getsockname()
        assert seen.count(q) == 2 and seen.count(b) == 40
        # the early line is answered as the burst shows (the busy peer's ninth datagram), the one
        # amid it right after it is read, and the batch once more at its end
        first, amid = seen.index(q), len(seen) - 1 - seen[::-1].index(q)
        assert seen[first + 1 : first + 11] == [b] * 9 + ["flush"]
        assert seen[amid + 1] == "flush" and seen[-1] == "flush" and seen.count("flush") == 3
    finally:
        busy.close()
        quiet.close()
        proto.__dict__.pop("flush", None)
        await server.stop(grace_s=0)
