"""`labchat-bench --mode login-storm`: a class logging in at once, against the server's real scrypt.

The issue it measures: 300 clients starting within a second against a default server, each with the
client's real 5 s connect deadline. scrypt (N=2^14, as `labchat-server` stores new accounts) on the
server's default two workers verifies a few dozen passwords a second, so the last of the class waits
several seconds. Before the login queue, 79 of 300 got in and 221 gave up at their deadline; with
it, every client hears its place in the queue (LOGIN_QUEUED) and waits.

The server is the real `Relay` behind the real transport, in a process of its own, with its default
login policy and scrypt cost. Two settings differ, because every simulated client shares 127.0.0.1
where a class has one address per machine: registrations per address are not limited, and the
channel's per-host HELLO bucket and its bound on sessions not yet logged in per host are raised (as
in every bench mode). Each client registers its account
on this first login: one scrypt each, as a password check costs.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..protocol import events as ev
from ..protocol.client import ClientConfig
from .server_proc import HELLO_BURST, HELLO_RATE_PER_S

PASSWORD = "bench-password"


@dataclass(slots=True)
class StormResult:
    clients: int
    logged_in: int = 0
    gave_up: int = 0
    refused: int = 0
    #: Seconds from the start of the storm to each client's LOGIN_OK.
    login_s: list[float] = field(default_factory=list)
    #: The longest queue a client was told it stood in.
    max_position: int = 0
    queued_clients: int = 0
    server: dict[str, Any] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        times = sorted(self.login_s)
        return {
            "label": "login-storm",
            "clients": self.clients,
            "logged_in": self.logged_in,
            "gave_up": self.gave_up,
            "refused": self.refused,
            "first_login_s": times[0] if times else None,
            "median_login_s": statistics.median(times) if times else None,
            "last_login_s": times[-1] if times else None,
            "max_queue_position": self.max_position,
            "queued_clients": self.queued_clients,
            "server": self.server,
            "failure_reasons": self.reasons,
        }


def _server_main(conn: Connection, workers: int) -> None:
    asyncio.run(_serve(conn, workers))


async def _serve(conn: Connection, workers: int) -> None:
    from ..protocol.channel import ChannelConfig, ServerChannel
    from ..server.accounts import LoginPolicy
    from ..server.keys import load_or_create_server_key
    from ..server.relay import Relay, RelayConfig
    from ..server.store import Store
    from ..server.transport import serve

    with tempfile.TemporaryDirectory(prefix="labchat-storm-") as tmp:
        store = Store(Path(tmp) / "storm.db")  # the default, real scrypt cost
        key = load_or_create_server_key(Path(tmp) / "storm.key")
        channel = ServerChannel(key, ChannelConfig(
            hello_rate_per_s=HELLO_RATE_PER_S, hello_burst=HELLO_BURST,
            cookie_half_open_threshold=4096, cookie_hello_rate_per_s=HELLO_RATE_PER_S,
            cookie_hello_burst=HELLO_BURST, max_half_open=4096,
            max_prelogin_per_host=4096,  # one host here, one per student in a lab
        ))  # fmt: skip
        config = RelayConfig(login=LoginPolicy(parallel_checks=workers, registrations_per_hour=0))
        server = await serve("127.0.0.1", 0, Relay(store, channel, config))
        conn.send(("port", server.address[1], store.scrypt_n))
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(conn.fileno(), stop.set)
        await stop.wait()
        loop.remove_reader(conn.fileno())
        stats = server.relay.stats
        conn.send(("stats", {
            "password_checks": stats.password_checks, "logins": stats.logins,
            "failed_logins": stats.failed_logins, "scrypt_n": store.scrypt_n, "workers": workers,
        }))  # fmt: skip
        await server.stop(grace_s=0)


async def _storm(port: int, clients: int, deadline_s: float, result: StormResult) -> None:
    from ..client.core import ChatClient

    config = ClientConfig()  # the client's real connect deadline
    conns = [ChatClient("127.0.0.1", port, f"s{i:03d}", PASSWORD, config=config) for i in range(clients)]
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    async def one(client: ChatClient) -> None:
        await client.start()
        queued = False
        async for event in client.events():
            if isinstance(event, ev.LoginQueued):
                queued = True
                result.max_position = max(result.max_position, event.position)
            elif isinstance(event, ev.LoggedIn):
                result.logged_in += 1
                result.login_s.append(loop.time() - t0)
                break
            elif isinstance(event, ev.LoginRefused):
                result.refused += 1
                result.reasons[event.reason] = result.reasons.get(event.reason, 0) + 1
                break
            elif isinstance(event, ev.ConnectFailed):
                result.gave_up += 1
                result.reasons[event.reason] = result.reasons.get(event.reason, 0) + 1
                break
        result.queued_clients += queued

    try:
        await asyncio.wait_for(asyncio.gather(*(one(c) for c in conns)), deadline_s)
    finally:
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


def run_login_storm(
    clients: int, max_time_s: float, workers: int = 2, log: Callable[[str], None] = lambda s: None
) -> StormResult:
    """Start the server, log `clients` clients in at once, stop; bounded by `max_time_s`."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_server_main, args=(child, workers), daemon=True)
    proc.start()
    result = StormResult(clients)
    try:
        if not parent.poll(30):
            raise RuntimeError("the bench server did not start within 30 s")
        _, port, scrypt_n = parent.recv()
        log(f"server on 127.0.0.1:{port}, scrypt N=2^{scrypt_n.bit_length() - 1}, {workers} workers; "
            f"{clients} clients log in at once")  # fmt: skip
        start = time.monotonic()
        try:
            asyncio.run(_storm(port, clients, max_time_s, result))
        except TimeoutError:
            log(f"stopped after {time.monotonic() - start:.0f} s")
        parent.send(("stop",))
        if parent.poll(30):
            _, result.server = parent.recv()
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    return result
