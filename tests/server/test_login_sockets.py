"""The login gate with real UDP sockets, real threads and real scrypt on 127.0.0.1."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import pytest

from labchat.client.core import ChatClient
from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from labchat.protocol.channel import ChannelConfig, ServerChannel
from labchat.protocol.client import ClientConfig
from labchat.protocol.errors import ErrorCode
from labchat.server.accounts import RegistrationLimit
from labchat.server.keys import load_or_create_server_key
from labchat.server.relay import Relay, RelayConfig
from labchat.server.store import SCRYPT_P, SCRYPT_R, Store, hash_password
from labchat.server.transport import RelayServer, serve

from ..helpers import TEST_SCRYPT_N, ClientUnderTest

pytestmark = pytest.mark.timeout(60)


async def _client(
    server: RelayServer, user: str, password: str, tmp_path: Path, n: int, config: ClientConfig | None = None
) -> ClientUnderTest:
    host, port = server.address
    known = KnownServers(tmp_path / f"known-{n}")
    return await ClientUnderTest(
        ChatClient(host, port, user, password, known_servers=known, config=config)
    ).start()


def _answered(c: ClientUnderTest) -> bool:
    return bool(c.of(ev.LoginRefused) or c.of(ev.LoggedIn) or c.of(ev.LoginQueued))


async def _server_for_one_host(tmp_path: Path) -> RelayServer:
    """A test server (cheap scrypt) that lets one host hold many sessions before login, so that
    the gate, not the channel's per-host bound (docs/protocol.md 4.7), is what is tested."""
    store = Store(tmp_path / "server.db", scrypt_n=TEST_SCRYPT_N)
    key = load_or_create_server_key(tmp_path / "server.key")
    channel = ServerChannel(key, ChannelConfig(max_prelogin_per_host=1024))
    return await serve("127.0.0.1", 0, Relay(store, channel, RelayConfig()))


async def test_150_guesses_at_once_from_150_ports_get_only_the_budget(tmp_path: Path) -> None:
    """The race of the issue: 150 wrong LOGINs from 150 source ports at once used to be checked
    all of them, and guess #120, the real password, got in. Now at most the budget is checked."""
    server = await _server_for_one_host(tmp_path)
    server.relay.store.create_account("alice", "the real one")
    guessers: list[ClientUnderTest] = []
    try:
        guessers = list(await asyncio.gather(
            *(_client(server, "alice", f"guess {i}", tmp_path, i) for i in range(119))
        ))  # fmt: skip
        await asyncio.wait_for(_all(guessers, _answered), 30)
        late = list(await asyncio.gather(
            *(_client(server, "alice", "the real one" if i == 119 else f"guess {i}", tmp_path, i)
              for i in range(119, 150))
        ))  # fmt: skip
        guessers += late
        await asyncio.wait_for(_all(late, lambda c: bool(c.of(ev.LoginRefused))), 30)
        real = guessers[119].of(ev.LoginRefused)[0]
        assert real.code == ErrorCode.LOGIN_THROTTLED
        assert server.relay.stats.password_checks <= 5
        assert len(server.relay.gate.waiting) <= 3  # and these wait 10 s each for the budget
        assert not any(c.of(ev.LoggedIn) for c in guessers)
    finally:
        await asyncio.gather(*(c.close() for c in guessers))
        await server.stop(grace_s=0)


def _scrypt_s(n: int) -> float:
    """What one scrypt of cost `n` takes on this machine now (the quickest of three)."""
    best = math.inf
    for _ in range(3):
        began = time.perf_counter()
        hash_password("secret", b"0123456789abcdef", n, SCRYPT_R, SCRYPT_P)
        best = min(best, time.perf_counter() - began)
    return best


async def test_a_queue_of_logins_outlasts_the_connect_deadline(tmp_path: Path) -> None:
    """Real scrypt (N=2^14) on one worker: the logins take about three times the 2.5 s deadline
    each client has (as many as this machine's scrypt needs for that), yet every one gets in
    because it hears its place in the queue (LOGIN_QUEUED at least every 2 s)."""
    server = await _server_for_one_host(tmp_path)
    server.relay.store.scrypt_n = 2**14
    server.relay.gate.policy = server.relay.gate.policy.__class__(parallel_checks=1)
    server.relay.registrations = RegistrationLimit(10_000)  # all of them sign up from one address
    deadline_s = 2.5
    config = ClientConfig(connect_timeout_s=deadline_s)
    count = min(150, max(20, math.ceil(3 * deadline_s / _scrypt_s(2**14))))
    clients: list[ClientUnderTest] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        clients = list(await asyncio.gather(
            *(_client(server, f"s{i}", "secret", tmp_path, i, config) for i in range(count))
        ))  # fmt: skip
        await asyncio.wait_for(_all(clients, lambda c: bool(c.of(ev.LoggedIn) or c.of(ev.Closed))), 45)
        assert all(c.of(ev.LoggedIn) for c in clients), [c.seen for c in clients if not c.of(ev.LoggedIn)]
        assert any(c.of(ev.LoginQueued) for c in clients)
        assert server.relay.stats.password_checks == count
        assert loop.time() - started > deadline_s
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        await server.stop(grace_s=0)


async def _all(clients: list[ClientUnderTest], done: object) -> None:
    assert callable(done)
    while not all(done(c) for c in clients):
        await asyncio.gather(*(c.wait_for(ev.Event, lambda e, c=c: done(c), timeout=30) for c in clients))
