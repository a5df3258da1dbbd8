"""`--mode core`: the CPU cost of one delivery in the sans-I/O cores alone, without sockets or scheduling.

The other modes measure what a user feels, on a machine where the server and the simulated clients
share two cores, so their figures mix the relay's work with the kernel's, the event loop's and the
other processes'. This mode wires one real `Relay` (with its SQLite store) to N real
`ClientConnection`s in memory, as the protocol tests do, and times only the calls of the two cores:

- **server**: receiving the SAYs of a batch, then `datagrams_to_send` (commit, fan-out, pack, seal),
  plus receiving the clients' ACKs and its own timers;
- **client**: `receive_datagram` + `datagrams_to_send` + `events` + `next_timer` per datagram, and the
  delayed-ACK timers as they come due.

`batch` messages arrive between two flushes: 1 is a quiet room (one message per datagram), 5 a busy
one, where each recipient's datagram carries five messages. The figures are µs per delivery and are
repeatable to a few per cent on an idle machine: the yardstick for changes to the hot paths.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..protocol import events as ev
from ..protocol.channel import Address, ChannelConfig, ServerChannel
from ..protocol.client import ClientConfig, ClientConnection
from ..server.accounts import LoginPolicy
from ..server.keys import load_or_create_server_key
from ..server.relay import Relay, RelayConfig
from ..server.store import Store

TEXT = "b|1|2|3|1234.567890|" + "x" * 60  # the length of the other modes' messages
#: Simulated time between two batches: the room's pace, so delayed ACKs come due as they would.
BATCH_INTERVAL_S = 0.01


def measure_core(clients: int, messages: int, batch: int) -> dict[str, Any]:
    """Run `messages` batches of `batch` messages into a room of `clients`; µs per delivery."""
    with tempfile.TemporaryDirectory(prefix="labchat-core-") as tmp:
        store = Store(Path(tmp) / "core.db", scrypt_n=2**10)
        key = load_or_create_server_key(Path(tmp) / "core.key")
        # Every in-memory client is one host to the server: lift the per-host pre-login bound.
        channel = ServerChannel(key, ChannelConfig(max_prelogin_per_host=4096))
        # ...and the registrations per address: every client here is a new account from that host.
        config = replace(
            RelayConfig(), rate_per_s=1e6, rate_burst=10**6, login=LoginPolicy(registrations_per_hour=0)
        )
        relay = Relay(store, channel, config)
        # The relay runs in this process: its per-message log lines would cost time that is not the
        # core's, and, where the process has a log handler on stdout (a server started in it
        # earlier), land in the middle of --json's output. Warnings still pass.
        server_log = logging.getLogger("labchat.server")
        level = server_log.level
        server_log.setLevel(logging.WARNING)
        try:
            return _run(relay, clients, messages, batch)
        finally:
            server_log.setLevel(level)
            store.close()


def _run(relay: Relay, n: int, messages: int, batch: int) -> dict[str, Any]:
    now = 1_000_000.0
    conns: dict[Address, ClientConnection] = {}
    for i in range(n):
        conn = ClientConnection(f"core{i:05d}", "core-password", config=ClientConfig())
        conn.connect(now)
        conns[("10.0.0.1", 5000 + i)] = conn

    def settle() -> None:  # untimed: logins and the room filling up
        moved = True
        while moved:
            moved = False
            for check in relay.password_checks():
                relay.complete_login(check.run(), now)
            for data, addr in relay.datagrams_to_send(now):
                conns[addr].receive_datagram(data, now)
                moved = True
            for addr, conn in conns.items():
                for data in conn.datagrams_to_send(now):
                    relay.receive_datagram(data, addr, now)
                    moved = True
                for _ in conn.events():
                    pass

    settle()
    online = sum(c.state is ev.ConnectionState.CONNECTED for c in conns.values())
    if online < n:
        raise RuntimeError(f"only {online} of {n} in-memory clients logged in")
    members = list(conns.items())
    clock = time.perf_counter
    server_s = client_s = 0.0
    for k in range(messages):
        now += BATCH_INTERVAL_S
        says: list[tuple[bytes, Address]] = []
        for j in range(batch):
            addr, sender = members[(k * batch + j) % n]
            sender.say(TEXT, now)
            says += [(data, addr) for data in sender.datagrams_to_send(now)]
        t0 = clock()
        for data, addr in says:
            relay.receive_datagram(data, addr, now)
        out = relay.datagrams_to_send(now)
        server_s += clock() - t0
        acks: list[tuple[bytes, Address]] = []
        t0 = clock()
        for data, addr in out:
            conn = conns[addr]
            conn.receive_datagram(data, now)
            acks += [(d, addr) for d in conn.datagrams_to_send(now)]
            for _ in conn.events():
                pass
            conn.next_timer()
        for addr, conn in members:  # timers as an event loop would fire them: only when due
            deadline = conn.next_timer()
            if deadline is not None and deadline <= now:
                conn.handle_timer(now)
                acks += [(d, addr) for d in conn.datagrams_to_send(now)]
        client_s += clock() - t0
        t0 = clock()
        for data, addr in acks:
            relay.receive_datagram(data, addr, now)
        relay.handle_timer(now)
        late = relay.datagrams_to_send(now)
        server_s += clock() - t0
        for data, addr in late:  # ACKs and the like for the clients: not a delivery, not timed
            conns[addr].receive_datagram(data, now)
    deliveries = messages * batch * (n - 1)
    return {
        "label": f"core {n}x{batch}",
        "clients": n,
        "batch": batch,
        "deliveries": deliveries,
        "core_server_us_per_delivery": server_s / deliveries * 1e6,
        "core_client_us_per_delivery": client_s / deliveries * 1e6,
    }
