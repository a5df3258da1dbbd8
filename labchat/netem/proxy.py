"""The asyncio shell around the impairment model: real sockets and timers, one upstream per client.

Clients send to the proxy's listening socket. For every distinct client address the proxy opens its
own UDP socket towards the server, so the server sees one source address per client (exactly as it
would without the proxy) and each reply arriving on that socket belongs to exactly one client.
Mappings that see no traffic in either direction for `idle_timeout` seconds are closed, like a NAT
would, and the table is capped so a flood of spoofed source addresses cannot exhaust file
descriptors; when it is full, datagrams from new addresses are refused (counted as `rejected`) and
existing clients carry on.

Delivery times come from the pure model (model.py) in `loop.time()` units. They go into one delay
line ordered by (time, arrival order), drained by a single `loop.call_at` timer: asyncio's own timer
heap does not keep equal deadlines in order, and a proxy that reorders datagrams nobody asked it to
reorder would be a poor teaching aid.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import ipaddress
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from .model import PERFECT_PIPE, Direction, Fate, Impairment, ImpairmentConfig, direction_rng

#: A (host, port) pair, as asyncio reports it.
Address = tuple[str, int]

#: Seconds a client mapping may stay silent (both directions) before its upstream socket is closed.
DEFAULT_IDLE_TIMEOUT = 60.0
#: Most client mappings (upstream sockets) open at once.
DEFAULT_MAX_CLIENTS = 1024
#: Timers may fire this early; anything due within it counts as due, so the delay line never spins.
_CLOCK_SLACK = time.get_clock_info("monotonic").resolution


@dataclass(slots=True)
class DirectionStats:
    """Counters for one direction.

    They always satisfy: received - dropped + duplicated == forwarded + rejected + in_flight.

    `rejected` counts copies the proxy could not send for its own reasons (client table full,
    upstream socket closed or failed), as opposed to `dropped`, which is simulated loss. `in_flight`
    is how many copies wait in the delay line; copies still waiting when the proxy closes stay
    counted there.
    """

    received: int = 0
    forwarded: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    rejected: int = 0
    in_flight: int = 0


@dataclass(slots=True)
class ProxyStats:
    """Live counters of a running proxy, per direction ("up" is client → server)."""

    up: DirectionStats = field(default_factory=DirectionStats)
    down: DirectionStats = field(default_factory=DirectionStats)

    def of(self, direction: Direction) -> DirectionStats:
        """The counters for `direction`."""
        return self.up if direction == Direction.UP else self.down


@dataclass(frozen=True, slots=True)
class DatagramEvent:
    """One datagram as it reached the proxy, and what the model decided for it.

    `t` is seconds since the proxy started, `arrived` the same instant on the event loop's clock
    (the clock of `fate.deliveries`). `fate` is None when the datagram was refused before impairment
    (client table full, or an empty datagram).
    """

    t: float
    arrived: float
    direction: Direction
    client: str
    data: bytes
    fate: Fate | None

    @property
    def delays(self) -> tuple[float, ...]:
        """Seconds from arrival to each copy's delivery; empty if dropped or refused."""
        return tuple(when - self.arrived for when in self.fate.deliveries) if self.fate else ()


def format_address(addr: tuple[Any, ...]) -> str:
    """`ip:port`, with IPv6 hosts in brackets so the port stays unambiguous."""
    host, port = str(addr[0]), int(addr[1])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _DelayLine:
    """Callbacks run in (deadline, insertion) order by one rescheduled `loop.call_at` timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = 0
        self._timer: asyncio.TimerHandle | None = None

    def schedule(self, when: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, self._counter, callback))
        self._counter += 1
        if when <= self._loop.time() + _CLOCK_SLACK:
            self._run_due()  # a perfect pipe forwards now, not one loop iteration later
        elif self._timer is None or when < self._timer.when():
            self._arm()

    def clear(self) -> None:
        """Forget everything still waiting (the proxy is closing)."""
        self._heap.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(self._heap[0][0], self._run_due) if self._heap else None

    def _run_due(self) -> None:
        deadline = self._loop.time() + _CLOCK_SLACK
        while self._heap and self._heap[0][0] <= deadline:
            heapq.heappop(self._heap)[2]()
        self._arm()


class _Client:
    """One client address and the upstream socket that speaks for it to the server."""

    __slots__ = ("addr", "backlog", "closed", "last_active", "name", "task", "transport")

    def __init__(self, addr: tuple[Any, ...], now: float) -> None:
        self.addr = addr
        self.name = format_address(addr)
        self.transport: asyncio.DatagramTransport | None = None
        self.task: asyncio.Task[None] | None = None
        # Copies due before the upstream socket finished opening; sent, in order, once it has.
        self.backlog: list[bytes] = []
        self.last_active = now
        self.closed = False


class _ListenProtocol(asyncio.DatagramProtocol):
    def __init__(self, proxy: NetemProxy) -> None:
        self._proxy = proxy

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._proxy._from_client(data, addr)

    def error_received(self, exc: Exception) -> None:
        """ICMP errors about a client that went away: UDP has nothing to tear down; ignore them."""


class _UpstreamProtocol(asyncio.DatagramProtocol):
    def __init__(self, proxy: NetemProxy, client: _Client) -> None:
        self._proxy = proxy
        self._client = client

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._proxy._from_server(self._client, data)

    def error_received(self, exc: Exception) -> None:
        """'Connection refused' while the server is down: the client's retransmissions will tell."""

    def connection_lost(self, exc: Exception | None) -> None:
        self._proxy._forget(self._client)


class _CaptureWriter:
    """Writes one JSON line per datagram; line-buffered so `tail -f` shows traffic as it happens."""

    def __init__(self, path: Path) -> None:
        self._file: TextIO = path.open("w", encoding="utf-8", buffering=1)

    def __call__(self, event: DatagramEvent) -> None:
        record = {
            "t": round(event.t, 6),
            "dir": event.direction,
            "client": event.client,
            "len": len(event.data),
            "hex": event.data.hex(),
            "fate": event.fate.label() if event.fate is not None else "rejected",
        }
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._file.close()


class NetemProxy:
    """A running impairment proxy. Create it with `start_proxy`; stop it with `close()`.

    Attributes: `address` is the bound listening (host, port), `server` the resolved server address,
    `stats` the live `ProxyStats`, `seed` the seed in use.
    """

    def __init__(
        self,
        server: tuple[Any, ...],
        server_family: int,
        up: ImpairmentConfig,
        down: ImpairmentConfig,
        seed: int,
        *,
        max_clients: int,
        idle_timeout: float,
        observers: list[Callable[[DatagramEvent], None]],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._server_sockaddr = server
        self._server_family = server_family
        self.server: Address = (str(server[0]), int(server[1]))
        self.address: Address = ("", 0)
        self.seed = seed
        self.up_config, self.down_config = up, down
        self.stats = ProxyStats()
        self._impair = {
            Direction.UP: Impairment(up, direction_rng(seed, Direction.UP)),
            Direction.DOWN: Impairment(down, direction_rng(seed, Direction.DOWN)),
        }
        self._max_clients = max_clients
        self._idle_timeout = idle_timeout
        self._observers = observers
        self._clients: dict[tuple[Any, ...], _Client] = {}
        self._delay = _DelayLine(self._loop)
        self._listen: asyncio.DatagramTransport | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._started = self._loop.time()
        self._closed = False

    @property
    def clients(self) -> int:
        """How many client mappings (upstream sockets) are open."""
        return len(self._clients)

    @property
    def elapsed(self) -> float:
        """Seconds since the proxy started; the `t` of captures and events."""
        return self._loop.time() - self._started

    async def close(self) -> None:
        """Stop listening, close upstream sockets, discard the delay line, finish the capture."""
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._delay.clear()
        tasks = [c.task for c in self._clients.values() if c.task is not None and not c.task.done()]
        for task in tasks:
            task.cancel()
        for client in list(self._clients.values()):
            self._forget(client)
        if self._listen is not None:
            self._listen.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let the transports' connection_lost callbacks run
        for observer in self._observers:
            if isinstance(observer, _CaptureWriter):
                observer.close()

    async def __aenter__(self) -> NetemProxy:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- plumbing -----------------------------------------------------------------------------

    async def _bind(self, listen: Address) -> None:
        self._listen, _ = await self._loop.create_datagram_endpoint(
            lambda: _ListenProtocol(self), local_addr=listen
        )
        sockname = self._listen.get_extra_info("sockname")
        self.address = (str(sockname[0]), int(sockname[1]))
        if self.address[1] == self.server[1] and _same_host(self.address[0], self.server[0]):
            self._listen.close()
            raise ValueError(f"the server address {format_address(self.server)} is the proxy itself")
        self._schedule_sweep()

    def _schedule_sweep(self) -> None:
        interval = max(self._idle_timeout / 4, 0.01)
        self._sweeper = self._loop.call_later(interval, self._periodic_sweep)

    def _periodic_sweep(self) -> None:
        self._sweep(self._loop.time())
        self._schedule_sweep()

    def _sweep(self, now: float) -> int:
        """Close the mappings idle for `idle_timeout` at time `now`; return how many."""
        idle = [c for c in self._clients.values() if now - c.last_active >= self._idle_timeout]
        for client in idle:
            self._forget(client)
        return len(idle)

    def _from_client(self, data: bytes, addr: tuple[Any, ...]) -> None:
        now = self._loop.time()
        self.stats.up.received += 1
        client = self._clients.get(addr)
        if not data:
            self._refuse(Direction.UP, format_address(addr), data, now)
            return
        if client is None:
            if len(self._clients) >= self._max_clients and not self._sweep(now):
                self._refuse(Direction.UP, format_address(addr), data, now)
                return
            client = self._open(addr, now)
        client.last_active = now
        self._impaired(Direction.UP, client, data, now, partial(self._send_up, client, data))

    def _from_server(self, client: _Client, data: bytes) -> None:
        now = self._loop.time()
        self.stats.down.received += 1
        client.last_active = now
        if not data:
            self._refuse(Direction.DOWN, client.name, data, now)
            return
        self._impaired(Direction.DOWN, client, data, now, partial(self._send_down, client.addr, data))

    def _refuse(self, direction: Direction, client: str, data: bytes, now: float) -> None:
        """Count and report a datagram the proxy will not forward at all, before impairment.

        Either the client table is full, or the datagram is empty: asyncio's `sendto` silently
        skips empty datagrams (Python < 3.13), so claiming to forward one would be a lie.
        """
        self.stats.of(direction).rejected += 1
        self._notify(DatagramEvent(now - self._started, now, direction, client, data, None))

    def _impaired(
        self,
        direction: Direction,
        client: _Client,
        data: bytes,
        now: float,
        send: Callable[[], None],
    ) -> None:
        """Ask the model for the datagram's fate, count it, schedule its copies, tell observers."""
        fate = self._impair[direction].decide(now)
        stats = self.stats.of(direction)
        stats.dropped += fate.dropped
        stats.duplicated += fate.duplicated
        stats.reordered += fate.reordered
        stats.in_flight += len(fate.deliveries)
        for when in fate.deliveries:
            self._delay.schedule(when, send)
        self._notify(DatagramEvent(now - self._started, now, direction, client.name, data, fate))

    def _notify(self, event: DatagramEvent) -> None:
        for observer in self._observers:
            observer(event)

    def _open(self, addr: tuple[Any, ...], now: float) -> _Client:
        client = _Client(addr, now)
        self._clients[addr] = client
        client.task = self._loop.create_task(self._connect(client))
        return client

    async def _connect(self, client: _Client) -> None:
        try:
            transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _UpstreamProtocol(self, client),
                remote_addr=self._server_sockaddr,
                family=self._server_family,
            )
        except OSError:
            self._forget(client)  # out of sockets, or no route: its backlog counts as rejected
            return
        if client.closed:
            transport.close()
            return
        client.transport = transport
        stats = self.stats.up
        for data in client.backlog:
            transport.sendto(data)
            stats.in_flight -= 1
            stats.forwarded += 1
        client.backlog.clear()

    def _send_up(self, client: _Client, data: bytes) -> None:
        stats = self.stats.up
        if client.closed:
            stats.in_flight -= 1
            stats.rejected += 1
        elif client.transport is None:
            client.backlog.append(data)  # still in flight until the socket opens
        else:
            stats.in_flight -= 1
            client.transport.sendto(data)
            stats.forwarded += 1

    def _send_down(self, addr: tuple[Any, ...], data: bytes) -> None:
        stats = self.stats.down
        stats.in_flight -= 1
        if self._listen is None or self._listen.is_closing():
            stats.rejected += 1
        else:
            self._listen.sendto(data, addr)
            stats.forwarded += 1

    def _forget(self, client: _Client) -> None:
        """Close a mapping for good; copies still waiting for it will be counted as rejected."""
        if client.closed:
            return
        client.closed = True
        if self._clients.get(client.addr) is client:
            del self._clients[client.addr]
        self.stats.up.in_flight -= len(client.backlog)
        self.stats.up.rejected += len(client.backlog)
        client.backlog.clear()
        if client.transport is not None:
            client.transport.close()


def _same_host(a: str, b: str) -> bool:
    """Whether datagrams to host `b` would reach a socket bound to host `a`."""
    with contextlib.suppress(ValueError):
        ip_a, ip_b = ipaddress.ip_address(a), ipaddress.ip_address(b)
        return ip_a == ip_b or (ip_a.is_unspecified and (ip_b.is_loopback or ip_b.is_unspecified))
    return a == b


async def start_proxy(
    listen: Address,
    server: Address,
    up: ImpairmentConfig = PERFECT_PIPE,
    down: ImpairmentConfig = PERFECT_PIPE,
    seed: int = 0,
    capture: Path | None = None,
    *,
    max_clients: int = DEFAULT_MAX_CLIENTS,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    on_datagram: Callable[[DatagramEvent], None] | None = None,
) -> NetemProxy:
    """Start a proxy on `listen` (port 0 picks one; read `.address`) impairing traffic to `server`.

    `up` applies to client → server datagrams, `down` to replies. The same `seed` and the same
    traffic give the same fates. `capture`, if given, receives one JSON line per datagram the proxy
    receives (see docs/netem.md); it is complete once `close()` returns. `on_datagram` is called for
    every datagram with its fate, for live logs. Raises OSError if the server cannot be resolved or
    the address cannot be bound, ValueError for impossible settings.
    """
    if max_clients < 1 or not idle_timeout > 0:
        raise ValueError("max_clients must be >= 1 and idle_timeout > 0")
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(server[0], server[1], type=socket.SOCK_DGRAM)
    family, _, _, _, sockaddr = infos[0]
    # The capture goes first, so a caller's observer that raises cannot leave a hole in it.
    writer = _CaptureWriter(capture) if capture is not None else None
    observers: list[Callable[[DatagramEvent], None]] = [writer] if writer is not None else []
    if on_datagram is not None:
        observers.append(on_datagram)
    proxy = NetemProxy(
        sockaddr,
        family,
        up,
        down,
        seed,
        max_clients=max_clients,
        idle_timeout=idle_timeout,
        observers=observers,
    )
    try:
        await proxy._bind(listen)
    except BaseException:
        if writer is not None:
            writer.close()
        raise
    return proxy
