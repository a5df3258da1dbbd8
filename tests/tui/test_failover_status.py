"""The header names the relay the app is on (protocol 22): after its server goes away and the same
server answers on the `--fallback` address, the app says it moved and shows the new address."""

from __future__ import annotations

import socket
from pathlib import Path

from labchat.protocol.channel import ServerChannel
from labchat.protocol.client import ClientConfig
from labchat.server.keys import load_or_create_server_key
from labchat.server.relay import Relay, RelayConfig
from labchat.server.store import Store
from labchat.server.transport import serve

from ..helpers import TEST_SCRYPT_N, start_server
from .util import app_for, log_in, log_lines, wait_until

FAST = ClientConfig(shutdown_retry_s=0.1, failover_s=0.5)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_header_follows_the_move_to_another_relay(tmp_path: Path) -> None:
    first = await start_server(tmp_path)
    spare = free_udp_port()
    app = app_for(first, tmp_path, config=FAST, fallbacks=(("127.0.0.1", spare),))
    second = None
    async with app.run_test(size=(120, 24)) as pilot:
        await log_in(pilot, app, "alice")
        host, port = first.address
        assert f"at {host}:{port}" in app.room.status.server
        await first.stop(grace_s=0)  # goes away; the same database and key answer elsewhere
        store = Store(tmp_path / "server.db", scrypt_n=TEST_SCRYPT_N)
        key = load_or_create_server_key(tmp_path / "server.key")
        second = await serve("127.0.0.1", spare, Relay(store, ServerChannel(key), RelayConfig()))
        await wait_until(pilot, lambda: f"at 127.0.0.1:{spare}" in app.room.status.server, timeout=10)
        assert any(f"Moved to 127.0.0.1:{spare}" in line for line in log_lines(app))
    if second is not None:
        await second.stop(grace_s=0)
