"""The server's asyncio shell around a real relay: what it runs besides moving datagrams."""

from __future__ import annotations

import asyncio
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
