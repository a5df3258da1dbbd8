"""Shared test helpers: a real relay server on 127.0.0.1 (ephemeral port, temp SQLite) and real clients."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from labchat.client.core import ChatClient
from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from labchat.protocol.channel import ServerChannel
from labchat.protocol.client import ClientConfig
from labchat.server.keys import load_or_create_server_key
from labchat.server.relay import Relay, RelayConfig
from labchat.server.store import Store
from labchat.server.transport import RelayServer, serve

#: Cheap scrypt for tests: the cost parameter is stored per account, so this changes no code path.
TEST_SCRYPT_N = 2**10
E = TypeVar("E", bound=ev.Event)


async def start_server(tmp_path: Path, **overrides: object) -> RelayServer:
    store = Store(tmp_path / "server.db", scrypt_n=TEST_SCRYPT_N)
    key = load_or_create_server_key(tmp_path / "server.key")
    config = replace(RelayConfig(), **overrides)  # type: ignore[arg-type]
    return await serve("127.0.0.1", 0, Relay(store, ServerChannel(key), config))


class ClientUnderTest:
    """A real ChatClient plus a record of every event it has seen, with bounded waits."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client
        self.seen: list[ev.Event] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> ClientUnderTest:
        await self.client.start()
        self._task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        async for event in self.client.events():
            self.seen.append(event)
            self._changed.set()
        self._changed.set()

    async def wait_for(
        self, kind: type[E], pred: Callable[[E], bool] = lambda e: True, timeout: float = 10.0
    ) -> E:
        async def scan() -> E:
            while True:
                for event in self.seen:
                    if isinstance(event, kind) and pred(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def wait_until(self, pred: Callable[[], bool], timeout: float = 10.0) -> None:
        """Until `pred()` holds, checked after each event this client sees."""

        async def scan() -> None:
            while not pred():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(scan(), timeout)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.seen if isinstance(e, kind)]

    async def close(self) -> None:
        await self.client.close()
        if self._task is not None:
            self._task.cancel()


async def connect(
    server: RelayServer,
    user: str,
    password: str = "secret",
    *,
    tmp_path: Path,
    config: ClientConfig | None = None,
    login: bool = True,
) -> ClientUnderTest:
    host, port = server.address
    known = KnownServers(tmp_path / f"known-{user}")
    cut = await ClientUnderTest(
        ChatClient(host, port, user, password, known_servers=known, config=config)
    ).start()
    if login:
        await cut.wait_for(ev.LoggedIn)
    return cut
