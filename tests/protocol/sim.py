"""A deterministic simulated network: the real Relay (with a real SQLite store) and real
ClientConnections, joined by an in-memory path that can lose, duplicate and reorder datagrams.

Time is a float we move by hand, so minutes of timeouts and retransmissions run in milliseconds.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from labchat.protocol import events as ev
from labchat.protocol.channel import Address, ServerChannel
from labchat.protocol.client import ClientConfig, ClientConnection
from labchat.server.keys import load_or_create_server_key
from labchat.server.relay import Relay, RelayConfig
from labchat.server.store import Store
from labchat.server.tickets import TicketBook

SERVER: Address = ("10.0.0.1", 8080)


@dataclass
class PathModel:
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.001


@dataclass
class SimClient:
    conn: ClientConnection
    addr: Address
    seen: list[ev.Event] = field(default_factory=list)
    online: bool = True  # False: unplugged, datagrams to and from it vanish
    deaf: bool = False  # True: datagrams to it vanish, its own still go out

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.seen if isinstance(e, kind)]


class SimNet:
    def __init__(
        self,
        tmp_path: Path,
        *,
        seed: int = 1,
        path: PathModel | None = None,
        relay_config: RelayConfig | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.rng = random.Random(seed)
        self.path = path or PathModel()
        self.now = 1_700_000_000.0
        self.relay_config = relay_config or RelayConfig()
        self.key = load_or_create_server_key(tmp_path / "server.key")
        self.relay: Relay | None = None
        #: The ticket key survives `crash_relay` + `start_relay`; None: a new one per relay.
        self.ticket_key: bytes | None = bytes(range(32))
        self.start_relay()
        self.clients: dict[str, SimClient] = {}
        self._queue: list[tuple[float, int, Address, Address, bytes]] = []
        self._n = 0
        self._stuck = 0

    def start_relay(self) -> None:
        store = Store(self.tmp_path / "server.db", scrypt_n=2**10)
        channel = ServerChannel(self.key)
        tickets = None
        if self.ticket_key is not None:  # kept across restarts, as the server keeps it on disk
            tickets = TicketBook(self.ticket_key, channel.public_key)
        self.relay = Relay(store, channel, self.relay_config, tickets)

    def crash_relay(self) -> None:
        """The server process dies (kill -9): everything not committed is gone."""
        assert self.relay is not None
        self.relay = None
        self._queue = [q for q in self._queue if q[2] != SERVER]

    def add_client(
        self,
        user: str,
        password: str = "secret",
        config: ClientConfig | None = None,
        port: int | None = None,
        host: str | None = None,
        register: bool = True,
    ) -> SimClient:
        addr = (host or f"10.0.1.{len(self.clients) + 1}", port or 5000)
        conn = ClientConnection(user, password, config=config or ClientConfig(), register=register)
        client = SimClient(conn, addr)
        self.clients[user if user not in self.clients else f"{user}#{len(self.clients)}"] = client
        conn.connect(self.now)
        self._flush()
        return client

    # ------------------------------------------------------------ the path

    def _ship(self, src: Address, dst: Address, data: bytes) -> None:
        p = self.path
        if self.rng.random() < p.loss:
            return
        copies = 2 if self.rng.random() < p.duplicate else 1
        for _ in range(copies):
            extra = p.delay * 10 * self.rng.random() if self.rng.random() < p.reorder else 0.0
            self._n += 1
            heapq.heappush(self._queue, (self.now + p.delay + extra, self._n, src, dst, data))

    def _flush(self) -> None:
        relay = self.relay
        if relay is not None:
            for check in relay.password_checks():
                relay.complete_login(check.run(), self.now)
            for data, addr in relay.datagrams_to_send(self.now):
                self._ship(SERVER, addr, data)
        for c in self.clients.values():
            for data in c.conn.datagrams_to_send(self.now):
                if c.online:
                    self._ship(c.addr, SERVER, data)
            c.seen.extend(c.conn.events())

    def _next_time(self) -> float | None:
        times = [self._queue[0][0]] if self._queue else []
        if self.relay is not None and (t := self.relay.next_timer()) is not None:
            times.append(t)
        for c in self.clients.values():
            t = c.conn.next_timer()
            # The client's fast path for the chatting state must agree with the general rule in
            # every state every scenario reaches (losses, reconnects, restarts, rate limits, quits).
            assert t == c.conn._any_deadline(), "next_timer fast path disagrees"
            if t is not None:
                times.append(t)
        return min(times) if times else None

    def step(self) -> bool:
        # First send what a test queued by calling a connection directly (`conn.who(now)`), as the
        # real transport does right after every call: otherwise the next timer could come first and
        # find the client "waiting" since long before, and re-handshake over a request never sent.
        for c in self.clients.values():
            if c.online:
                for data in c.conn.datagrams_to_send(self.now):
                    self._ship(c.addr, SERVER, data)
        t = self._next_time()
        if t is None:
            return False
        if t <= self.now:
            self._stuck += 1
            # A deadline that has come but whose handling changes nothing would spin a real event
            # loop at 100% CPU: fail loudly instead of hanging.
            assert self._stuck < 1000, "timer spin: a deadline in the past that never clears"
        else:
            self._stuck = 0
        self.now = max(self.now, t)
        while self._queue and self._queue[0][0] <= self.now:
            _, _, src, dst, data = heapq.heappop(self._queue)
            if dst == SERVER:
                if self.relay is not None:
                    self.relay.receive_datagram(data, src, self.now)
            else:
                for c in self.clients.values():
                    if c.addr == dst and c.online and not c.deaf:
                        c.conn.receive_datagram(data, self.now)
        if self.relay is not None:
            self.relay.handle_timer(self.now)
        for c in self.clients.values():
            c.conn.handle_timer(self.now)
        self._flush()
        return True

    def run_until(self, done: Callable[[], bool], limit_s: float = 120.0) -> None:
        end = self.now + limit_s
        while not done():
            assert self.now < end, f"not done after {limit_s} simulated seconds"
            if not self.step():
                raise AssertionError("nothing left to happen, condition still false")

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        # What a test queued by calling a connection directly leaves now, as the real transport
        # sends right after every call, even if no timer falls inside `seconds`.
        for c in self.clients.values():
            if c.online:
                for data in c.conn.datagrams_to_send(self.now):
                    self._ship(c.addr, SERVER, data)
        while self.now < end:
            t = self._next_time()
            if t is None or t > end:
                self.now = end
                break
            self.step()

    def logged_in(self, *users: str) -> bool:
        return all(self.clients[u].of(ev.LoggedIn) for u in users)


def fast_config(**kw: object) -> ClientConfig:
    return replace(ClientConfig(), **kw)  # type: ignore[arg-type]
