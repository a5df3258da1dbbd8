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

        async def a_whole_checkpoint() -> None:
            # A checkpoint after the message copies everything the WAL holds into the database file:
            # once nothing writes meanwhile (a passive checkpoint that runs beside a write, a ticket
            # or a cursor saved on the loop, copies what it can and leaves the rest for the next).
            while True:
                server.protocol.checkpointed.clear()
                await server.protocol.checkpointed.wait()
                log, copied = server.protocol.last_checkpoint
                if log > 0 and copied == log:
                    return

        await asyncio.wait_for(a_whole_checkpoint(), 10)
        for c in (alice, bob):
            await c.close()
    finally:
        await server.stop(grace_s=0)
    assert server.protocol.checkpoints >= 1


async def test_a_quiet_peer_amid_a_burst_is_answered_before_the_rest_of_the_burst(tmp_path: Path) -> None:
    """21.7: one read batch is answered in one flush, so the quiet peer's datagrams are handled and
    answered ahead of the rest of another peer's burst (the datagrams here are junk: the relay drops
    them, which is all this needs: the order in which it is fed and flushed)."""
    server = await start_server(tmp_path)
    proto = server.protocol
    if proto._transport is not None:  # a loop without add_reader (Windows): asyncio reads, not this
        await server.stop(grace_s=0)
        pytest.skip("the event loop reads the socket itself here")
    loop = asyncio.get_running_loop()
    seen: list[object] = []
    receive, flush = proto.relay.receive_datagram, proto.flush

    def fed(data: bytes, addr: tuple[str, int], now: float) -> None:
        seen.append(addr)
        receive(data, addr, now)
        if addr == busy.getsockname() and seen.count(addr) == 12:
            quiet.sendto(b"late", target)  # arrives while the burst is being handled

    def flushed() -> None:
        seen.append("flush")
        flush()

    proto.relay.receive_datagram = fed  # type: ignore[method-assign]
    proto.flush = flushed  # type: ignore[method-assign]
    target = server.address
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        loop.remove_reader(proto.sock.fileno())  # the datagrams wait in the socket: one batch
        for sock in (busy, quiet):
            sock.bind(("127.0.0.1", 0))
        quiet.sendto(b"early", target)  # before the burst shows
        for _ in range(20):
            busy.sendto(b"x" * 100, target)
        quiet.sendto(b"amid", target)  # after it showed
        for _ in range(20):
            busy.sendto(b"x" * 100, target)
        proto._on_readable()
        q, b = quiet.getsockname(), busy.getsockname()
        assert seen.count(q) == 3 and seen.count(b) == 40
        # Both of the quiet peer's datagrams read with the burst are handled and answered before the
        # busy peer's ninth (the burst shows there: the rest of it waits); the one that came while
        # the burst was handled jumps the rest of it; the batch ends with one more flush.
        assert seen == [q] + [b] * 8 + [q, "flush"] + [b] * 16 + [q, "flush"] + [b] * 16 + ["flush"]
    finally:
        busy.close()
        quiet.close()
        proto.__dict__.pop("flush", None)
        await server.stop(grace_s=0)
