"""The optional uvloop event loop (`labchat[fast]`) runs the same server and client code.

uvloop's handles differ from asyncio's in small ways (`call_at` with a time already past returns a
plain handle with no `when()`), so the shells must only use what both loops offer. A lossy,
reordering path makes every timer of the reliable link fire, past deadlines included. Skipped where
uvloop is not installed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from labchat.client.core import ChatClient
from labchat.client.known_servers import KnownServers
from labchat.netem import ImpairmentConfig, start_proxy
from labchat.protocol import events as ev
from labchat.protocol.client import ClientConfig

from ..helpers import ClientUnderTest, connect, start_server

uvloop = pytest.importorskip("uvloop")


def test_a_lossy_conversation_on_uvloop(tmp_path: Path) -> None:
    async def conversation() -> None:
        server = await start_server(tmp_path)
        bad = ImpairmentConfig(loss=0.3, reorder=0.3, duplicate=0.1, delay=0.002)
        async with await start_proxy(("127.0.0.1", 0), server.address, bad, bad, seed=7) as proxy:
            host, port = proxy.address
            alice = await ClientUnderTest(
                ChatClient(
                    host, port, "alice", "secret", known_servers=KnownServers(tmp_path / "ka"),
                    config=ClientConfig(connect_timeout_s=15),  # 30 % loss: more than 5 s may pass
                )
            ).start()
            await alice.wait_for(ev.LoggedIn, timeout=15)
            bob = await connect(server, "bob", tmp_path=tmp_path)
            for i in range(60):
                alice.client.submit(f"line {i}")
            await bob.wait_for(ev.MessageReceived, lambda e: e.text == "line 59", timeout=30)
            assert [e.text for e in bob.of(ev.MessageReceived)] == [f"line {i}" for i in range(60)]
            await alice.close()
            await bob.close()
        await server.stop(grace_s=0.0)

    loop = uvloop.new_event_loop()
    errors: list[str] = []  # an exception in a callback is only logged by the loop: catch it here
    loop.set_exception_handler(lambda _loop, context: errors.append(str(context.get("exception"))))
    try:
        loop.run_until_complete(asyncio.wait_for(conversation(), 60))
    finally:
        loop.close()
    assert errors == []
