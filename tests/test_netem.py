"""labchat-netem: the pure impairment model, the asyncio proxy on loopback sockets, and the CLI.

Every socket is bound to 127.0.0.1 port 0 and every wait is bounded by `asyncio.wait_for`. Waits are
on events (a datagram arrived, the proxy reported a datagram), never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labchat.netem import (
    PERFECT_PIPE,
    DatagramEvent,
    Direction,
    Fate,
    Impairment,
    ImpairmentConfig,
    NetemProxy,
    direction_rng,
    main,
    start_proxy,
)
from labchat.netem.cli import _config, build_parser

TIMEOUT = 5.0
LOCALHOST = "127.0.0.1"

# -- the pure model ----------


def fates(config: ImpairmentConfig, seed: int, n: int, step: float = 0.001) -> list[Fate]:
    model = Impairment(config, random.Random(seed))
    return [model.decide(i * step) for i in range(n)]


@given(now=st.floats(min_value=0, max_value=1e6), seed=st.integers())
def test_zero_rates_are_a_perfect_pipe(now: float, seed: int) -> None:
    fate = Impairment(PERFECT_PIPE, random.Random(seed)).decide(now)
    assert fate == Fate((now,))
    assert fate.label() == "forwarded"
    assert PERFECT_PIPE.is_perfect


def test_same_seed_same_fates_and_other_seed_differs() -> None:
    config = ImpairmentConfig(loss=0.3, duplicate=0.2, reorder=0.2, delay=0.01, jitter=0.005)
    assert fates(config, 42, 500) == fates(config, 42, 500)
    assert fates(config, 42, 500) != fates(config, 43, 500)


def test_rates_converge_over_many_draws() -> None:
    config = ImpairmentConfig(loss=0.2, duplicate=0.1, reorder=0.3)
    n = 20_000
    result = fates(config, 7, n)
    kept = [f for f in result if not f.dropped]
    assert sum(f.dropped for f in result) / n == pytest.approx(0.2, abs=0.015)
    assert sum(f.duplicated for f in kept) / len(kept) == pytest.approx(0.1, abs=0.015)
    assert sum(f.reordered for f in kept) / len(kept) == pytest.approx(0.3, abs=0.015)


def test_jitter_spreads_delays_around_the_mean() -> None:
    config = ImpairmentConfig(delay=0.1, jitter=0.02)
    delays = [f.deliveries[0] - i * 0.001 for i, f in enumerate(fates(config, 3, 5000))]
    assert min(delays) >= 0.08 - 1e-9 and max(delays) <= 0.12 + 1e-9
    assert sum(delays) / len(delays) == pytest.approx(0.1, abs=0.002)


def test_duplicate_gives_two_deliveries() -> None:
    fate = Impairment(ImpairmentConfig(duplicate=1.0, delay=0.02), random.Random(1)).decide(5.0)
    assert fate.duplicated and not fate.dropped
    assert fate.deliveries == (5.02, 5.02)
    assert fate.label() == "duplicated"


def test_loss_of_one_drops_everything() -> None:
    assert all(f == Fate(()) and f.label() == "dropped" for f in fates(ImpairmentConfig(loss=1.0), 1, 200))


def test_reorder_lets_a_later_datagram_overtake() -> None:
    config = ImpairmentConfig(reorder=0.5, delay=0.01, reorder_delay=0.05)
    result = fates(config, 11, 200, step=0.001)
    overtaken = 0
    for i, fate in enumerate(result[:-1]):
        nxt = result[i + 1]
        if fate.reordered and not nxt.reordered:
            assert nxt.deliveries[0] < fate.deliveries[0]  # sent later, delivered earlier
            overtaken += 1
        if not fate.reordered:
            (when,) = fate.deliveries
            assert when == pytest.approx(i * 0.001 + 0.01)
    assert overtaken > 20


@given(
    seed=st.integers(),
    now=st.floats(min_value=0, max_value=1e6),
    loss=st.floats(0, 1),
    duplicate=st.floats(0, 1),
    reorder=st.floats(0, 1),
    delay=st.floats(0, 2),
    jitter=st.floats(0, 2),
)
def test_every_fate_is_well_formed(
    seed: int,
    now: float,
    loss: float,
    duplicate: float,
    reorder: float,
    delay: float,
    jitter: float,
) -> None:
    config = ImpairmentConfig(loss, duplicate, reorder, delay, jitter)
    fate = Impairment(config, random.Random(seed)).decide(now)
    assert len(fate.deliveries) == (0 if fate.dropped else 2 if fate.duplicated else 1)
    assert list(fate.deliveries) == sorted(fate.deliveries)
    hold = config.reorder_delay if fate.reordered else 0.0
    for when in fate.deliveries:
        assert now <= when <= now + delay + jitter + hold + 1e-6 * max(1.0, now)


@given(seed=st.integers(), low=st.floats(0, 1), high=st.floats(0, 1))
def test_more_loss_drops_a_superset_for_the_same_seed(seed: int, low: float, high: float) -> None:
    low, high = min(low, high), max(low, high)
    dropped_low = [f.dropped for f in fates(ImpairmentConfig(loss=low), seed, 100)]
    dropped_high = [f.dropped for f in fates(ImpairmentConfig(loss=high), seed, 100)]
    assert all(h for lo, h in zip(dropped_low, dropped_high, strict=True) if lo)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"loss": 1.5},
        {"duplicate": -0.1},
        {"reorder": math.nan},
        {"delay": -1.0},
        {"jitter": math.inf},
    ],
)
def test_impossible_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ImpairmentConfig(**kwargs)


def test_each_direction_has_its_own_reproducible_stream() -> None:
    up, down = Direction.UP, Direction.DOWN
    assert direction_rng(5, up).random() == direction_rng(5, up).random()
    assert direction_rng(5, up).random() != direction_rng(5, down).random()
    assert direction_rng(5, up).random() == random.Random("labchat-netem:5:up").random()


# -- the proxy, on real loopback sockets ----------


class Inbox(asyncio.DatagramProtocol):
    """Collects datagrams with their senders; `wait_for(n)` returns once n have arrived."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, tuple[str, int]]] = []
        self._changed = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.items.append((data, addr))
        self._changed.set()

    @property
    def payloads(self) -> list[bytes]:
        return [data for data, _ in self.items]

    async def wait_for(self, n: int) -> list[bytes]:
        async def until() -> None:
            while len(self.items) < n:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), TIMEOUT)
        return self.payloads


class EchoServer(Inbox):
    """Records what it receives and answers every datagram with b"echo:" + the datagram."""

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(b"echo:" + data, addr)
        super().datagram_received(data, addr)


async def endpoint(factory: Callable[[], Inbox], **kwargs: Any) -> tuple[asyncio.DatagramTransport, Inbox]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(factory, **kwargs)
    return transport, protocol


#: The `echo` fixture: the echo server's address and protocol.
Echo = tuple[tuple[str, int], EchoServer]


@pytest.fixture
async def echo() -> AsyncIterator[Echo]:
    transport, server = await endpoint(EchoServer, local_addr=(LOCALHOST, 0))
    assert isinstance(server, EchoServer)
    yield transport.get_extra_info("sockname")[:2], server
    transport.close()


class Client:
    """A UDP client talking to the proxy from its own port."""

    def __init__(self, transport: asyncio.DatagramTransport, inbox: Inbox) -> None:
        self.transport, self.inbox = transport, inbox
        self.address: tuple[str, int] = transport.get_extra_info("sockname")[:2]

    def send(self, data: bytes) -> None:
        self.transport.sendto(data)


#: The `make_client` fixture: opens a client socket aimed at a proxy.
MakeClient = Callable[[NetemProxy], Awaitable["Client"]]


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    transports: list[asyncio.DatagramTransport] = []

    async def make(proxy: NetemProxy) -> Client:
        transport, inbox = await endpoint(Inbox, remote_addr=proxy.address)
        transports.append(transport)
        return Client(transport, inbox)

    yield make
    for transport in transports:
        transport.close()


class EventLog:
    """An `on_datagram` observer that can be awaited until it has seen n datagrams."""

    def __init__(self) -> None:
        self.events: list[DatagramEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: DatagramEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, direction: str) -> list[DatagramEvent]:
        return [e for e in self.events if e.direction == direction]

    async def wait_for(self, n: int, direction: str | None = None) -> None:
        """Until n datagrams (in `direction`, or in all) have been seen."""

        async def until() -> None:
            while len(self.of(direction) if direction else self.events) < n:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), TIMEOUT)


def assert_balanced(proxy: NetemProxy) -> None:
    for s in (proxy.stats.up, proxy.stats.down):
        assert s.received - s.dropped + s.duplicated == s.forwarded + s.rejected + s.in_flight


async def test_datagrams_are_relayed_both_ways(echo: Echo, make_client: MakeClient) -> None:
    server_addr, server = echo
    async with await start_proxy((LOCALHOST, 0), server_addr, seed=1) as proxy:
        assert proxy.address[0] == LOCALHOST and proxy.address[1] != 0
        client = await make_client(proxy)
        client.send(b"hello")
        assert await client.inbox.wait_for(1) == [b"echo:hello"]
        assert server.payloads == [b"hello"]
        assert (proxy.stats.up.received, proxy.stats.up.forwarded) == (1, 1)
        assert (proxy.stats.down.received, proxy.stats.down.forwarded) == (1, 1)
        assert_balanced(proxy)


async def test_perfect_pipe_keeps_order_and_odd_sizes(echo: Echo, make_client: MakeClient) -> None:
    server_addr, server = echo
    payloads = [b"x" * 65_000, b"\x00" * 3, *(b"%d" % i for i in range(50))]
    async with await start_proxy((LOCALHOST, 0), server_addr) as proxy:
        client = await make_client(proxy)
        for payload in payloads:
            client.send(payload)
        assert await server.wait_for(len(payloads)) == payloads
        assert await client.inbox.wait_for(len(payloads)) == [b"echo:" + p for p in payloads]


async def test_delay_holds_datagrams_back_in_order(echo: Echo, make_client: MakeClient) -> None:
    server_addr, _ = echo
    config = ImpairmentConfig(delay=0.03)
    async with await start_proxy((LOCALHOST, 0), server_addr, config, config) as proxy:
        client = await make_client(proxy)
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        for i in range(20):
            client.send(b"%d" % i)
        assert await client.inbox.wait_for(20) == [b"echo:%d" % i for i in range(20)]
        assert loop.time() - sent_at >= 0.06 - 0.005  # delayed up and down


async def test_loss_of_one_lets_nothing_through(echo: Echo, make_client: MakeClient) -> None:
    server_addr, server = echo
    log = EventLog()
    lossy = ImpairmentConfig(loss=1.0)
    async with await start_proxy((LOCALHOST, 0), server_addr, lossy, seed=1, on_datagram=log) as proxy:
        client = await make_client(proxy)
        for i in range(20):
            client.send(b"%d" % i)
        await log.wait_for(20)
        assert all(e.fate is not None and e.fate.dropped for e in log.events)
        assert proxy.stats.up.dropped == 20
        assert proxy.stats.up.forwarded == proxy.stats.up.in_flight == 0
        assert server.items == []
        assert_balanced(proxy)


async def test_duplicates_reach_the_server_twice(echo: Echo, make_client: MakeClient) -> None:
    server_addr, server = echo
    up = ImpairmentConfig(duplicate=1.0)
    async with await start_proxy((LOCALHOST, 0), server_addr, up) as proxy:
        client = await make_client(proxy)
        client.send(b"a")
        client.send(b"b")
        assert await server.wait_for(4) == [b"a", b"a", b"b", b"b"]
        assert await client.inbox.wait_for(4) == [b"echo:a", b"echo:a", b"echo:b", b"echo:b"]
        assert proxy.stats.up.duplicated == 2 and proxy.stats.down.duplicated == 0


async def test_server_sees_datagrams_in_the_order_the_model_decided(
    echo: Echo, make_client: MakeClient
) -> None:
    server_addr, server = echo
    log = EventLog()
    up = ImpairmentConfig(reorder=0.4, duplicate=0.2, reorder_delay=0.02)
    async with await start_proxy((LOCALHOST, 0), server_addr, up, seed=9, on_datagram=log) as proxy:
        client = await make_client(proxy)
        n = 30
        for i in range(n):
            client.send(b"%d" % i)
        await log.wait_for(n, "up")
        ups = [(e.fate.deliveries, e.data) for e in log.of("up") if e.fate is not None]
        copies = [(when, i, data) for i, (times, data) in enumerate(ups) for when in times]
        expected = [data for _, _, data in sorted(copies)]  # by delivery time, then arrival
        assert await server.wait_for(len(expected)) == expected
        assert expected != sorted(expected, key=int)  # something really was reordered
        assert proxy.stats.up.reordered > 0
        assert_balanced(proxy)


async def test_same_seed_same_fates_through_the_proxy(echo: Echo, make_client: MakeClient) -> None:
    server_addr, _ = echo
    up = ImpairmentConfig(loss=0.3, duplicate=0.2, reorder=0.2)
    labels: list[list[str]] = []
    for _ in range(2):
        log = EventLog()
        async with await start_proxy((LOCALHOST, 0), server_addr, up, seed=77, on_datagram=log) as p:
            client = await make_client(p)
            for i in range(40):
                client.send(b"%d" % i)
            await log.wait_for(40, "up")
        labels.append([e.fate.label() for e in log.of("up") if e.fate is not None])
    assert labels[0] == labels[1]
    assert expected_labels(up, 77, 40) == labels[0]


def expected_labels(config: ImpairmentConfig, seed: int, n: int) -> list[str]:
    model = Impairment(config, direction_rng(seed, Direction.UP))
    return [model.decide(0.0).label() for _ in range(n)]


async def test_each_client_gets_its_own_upstream_and_its_own_replies(
    echo: Echo, make_client: MakeClient
) -> None:
    server_addr, server = echo
    async with await start_proxy((LOCALHOST, 0), server_addr) as proxy:
        alice, bob = await make_client(proxy), await make_client(proxy)
        alice.send(b"from alice")
        bob.send(b"from bob")
        assert await alice.inbox.wait_for(1) == [b"echo:from alice"]
        assert await bob.inbox.wait_for(1) == [b"echo:from bob"]
        alice.send(b"again")
        assert await alice.inbox.wait_for(2) == [b"echo:from alice", b"echo:again"]
        sources = {payload: addr for payload, addr in server.items}
        assert sources[b"from alice"] == sources[b"again"] != sources[b"from bob"]
        assert proxy.address not in sources.values()
        assert proxy.clients == 2
        assert bob.inbox.payloads == [b"echo:from bob"]


async def test_idle_mappings_expire_and_come_back(echo: Echo, make_client: MakeClient) -> None:
    server_addr, server = echo
    async with await start_proxy((LOCALHOST, 0), server_addr, idle_timeout=30) as proxy:
        client = await make_client(proxy)
        client.send(b"1")
        await client.inbox.wait_for(1)
        loop = asyncio.get_running_loop()
        assert proxy._sweep(loop.time()) == 0  # fresh: kept
        assert proxy._sweep(loop.time() + 31) == 1  # as if 31 s of silence had passed
        assert proxy.clients == 0
        client.send(b"2")
        assert await client.inbox.wait_for(2) == [b"echo:1", b"echo:2"]
        assert server.items[0][1] != server.items[1][1]  # a new upstream socket
        assert proxy.clients == 1


async def test_client_table_is_capped(echo: Echo, make_client: MakeClient) -> None:
    server_addr, server = echo
    log = EventLog()
    async with await start_proxy((LOCALHOST, 0), server_addr, max_clients=1, on_datagram=log) as proxy:
        first, second = await make_client(proxy), await make_client(proxy)
        first.send(b"first")
        await first.inbox.wait_for(1)
        second.send(b"second")
        await log.wait_for(3)  # first up, first down, second refused
        assert log.events[-1].fate is None
        assert proxy.stats.up.rejected == 1 and proxy.clients == 1
        first.send(b"still here")
        assert await first.inbox.wait_for(2) == [b"echo:first", b"echo:still here"]
        assert b"second" not in server.payloads
        assert_balanced(proxy)


async def test_capture_records_every_datagram_both_ways(
    echo: Echo, make_client: MakeClient, tmp_path: Path
) -> None:
    server_addr, _ = echo
    capture = tmp_path / "wire.jsonl"
    proxy = await start_proxy((LOCALHOST, 0), server_addr, capture=capture)
    try:
        client = await make_client(proxy)
        client.send(b"secret \x00\xff")
        await client.inbox.wait_for(1)
    finally:
        await proxy.close()
    records = [json.loads(line) for line in capture.read_text().splitlines()]
    assert [r["dir"] for r in records] == ["up", "down"]
    assert [bytes.fromhex(r["hex"]) for r in records] == [
        b"secret \x00\xff",
        b"echo:secret \x00\xff",
    ]
    client_name = f"{client.address[0]}:{client.address[1]}"
    for record in records:
        assert record["client"] == client_name
        assert record["len"] == len(bytes.fromhex(record["hex"]))
        assert record["fate"] == "forwarded"
        assert 0 <= record["t"] < TIMEOUT
    assert records[0]["t"] <= records[1]["t"]


async def test_capture_includes_dropped_datagrams(
    echo: Echo, make_client: MakeClient, tmp_path: Path
) -> None:
    server_addr, _ = echo
    capture, log = tmp_path / "wire.jsonl", EventLog()
    lossy = ImpairmentConfig(loss=1.0)
    async with await start_proxy(
        (LOCALHOST, 0), server_addr, lossy, capture=capture, on_datagram=log
    ) as proxy:
        client = await make_client(proxy)
        client.send(b"lost")
        await log.wait_for(1)
    (record,) = [json.loads(line) for line in capture.read_text().splitlines()]
    assert (record["fate"], bytes.fromhex(record["hex"])) == ("dropped", b"lost")


async def test_close_is_idempotent_and_discards_the_delay_line(echo: Echo, make_client: MakeClient) -> None:
    server_addr, server = echo
    log = EventLog()
    slow = ImpairmentConfig(delay=30.0)
    proxy = await start_proxy((LOCALHOST, 0), server_addr, slow, on_datagram=log)
    client = await make_client(proxy)
    client.send(b"never")
    await log.wait_for(1)
    await asyncio.wait_for(proxy.close(), TIMEOUT)
    await asyncio.wait_for(proxy.close(), TIMEOUT)
    assert proxy.stats.up.in_flight == 1 and proxy.clients == 0
    assert server.items == []
    assert_balanced(proxy)


async def test_pointing_the_proxy_at_itself_is_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOCALHOST, 0))
        port = probe.getsockname()[1]
    with pytest.raises(ValueError, match="proxy itself"):
        await start_proxy((LOCALHOST, port), (LOCALHOST, port))


# -- the command line ----------

SERVER = ["--server", f"{LOCALHOST}:9"]  # never contacted: no client sends in these tests


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--listen", f"{LOCALHOST}:0"],
        ["--listen", "no-port", *SERVER],
        ["--listen", f"{LOCALHOST}:70000", *SERVER],
        ["--listen", f"{LOCALHOST}:0", "--server", f"{LOCALHOST}:0"],
        ["--listen", f"{LOCALHOST}:0", *SERVER, "--loss", "1.5"],
        ["--listen", f"{LOCALHOST}:0", *SERVER, "--loss", "150%"],
        ["--listen", f"{LOCALHOST}:0", *SERVER, "--up-duplicate", "lots"],
        ["--listen", f"{LOCALHOST}:0", *SERVER, "--delay", "-5"],
        ["--listen", f"{LOCALHOST}:0", *SERVER, "--jitter", "nan"],
        ["--listen", f"{LOCALHOST}:0", *SERVER, "--duration", "0"],
        ["--listen", f"{LOCALHOST}:0", *SERVER, "--seed", "x"],
        ["--listen", f"{LOCALHOST}:0", *SERVER, "--max-clients", "0"],
        ["--listen", f"{LOCALHOST}:0", *SERVER, "--bogus"],
    ],
)
def test_bad_flags_exit_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("labchat-netem: error: ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--up-loss" in capsys.readouterr().out


def test_per_direction_flags_override_shared_ones() -> None:
    args = build_parser().parse_args(
        [
            "--listen",
            ":0",
            *SERVER,
            "--loss",
            "10%",
            "--down-loss",
            "0.5",
            "--delay",
            "20",
            "--up-jitter",
            "4",
        ]
    )
    assert _config(args, Direction.UP) == ImpairmentConfig(loss=0.1, delay=0.02, jitter=0.004)
    assert _config(args, Direction.DOWN) == ImpairmentConfig(loss=0.5, delay=0.02)


def test_duration_runs_and_prints_a_summary(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    capture = tmp_path / "c.jsonl"
    argv = [
        "--listen",
        f"{LOCALHOST}:0",
        *SERVER,
        "--loss",
        "20%",
        "--seed",
        "3",
        "--duration",
        "0.2",
        "--stats-interval",
        "0.05",
        "--capture",
        str(capture),
    ]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert f"listening on {LOCALHOST}:" in out and f"{LOCALHOST}:0 " not in out
    assert "(seed 3)" in out and "loss 20%" in out
    summary = [line for line in out.splitlines() if line.startswith("summary")]
    assert len(summary) == 2
    assert "summary up" in summary[0] and "summary down" in summary[1]
    assert all("received 0" in line and "dropped 0" in line for line in summary)
    assert capture.exists() and capture.read_text() == ""


def test_address_in_use_is_a_one_line_runtime_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((LOCALHOST, 0))
        port = taken.getsockname()[1]
        assert main(["--listen", f"{LOCALHOST}:{port}", *SERVER, "--duration", "5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("labchat-netem: error: cannot start") and err.count("\n") == 1


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_exits_cleanly_with_a_summary(sig: signal.Signals) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "labchat.netem", "--listen", f"{LOCALHOST}:0", *SERVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert "listening on" in proc.stdout.readline()  # handlers are installed right after
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "summary up" in out and "summary down" in out


async def test_empty_datagrams_are_refused_not_silently_lost(echo: Echo, make_client: MakeClient) -> None:
    server_addr, server = echo
    log = EventLog()
    async with await start_proxy((LOCALHOST, 0), server_addr, on_datagram=log) as proxy:
        # asyncio transports skip empty sends, so use a plain socket (non-blocking UDP send).
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"", proxy.address)
            await log.wait_for(1)
        assert log.events[0].fate is None and proxy.stats.up.rejected == 1
        client = await make_client(proxy)
        client.send(b"fine")
        assert await client.inbox.wait_for(1) == [b"echo:fine"]
        assert server.payloads == [b"fine"]
        assert_balanced(proxy)


async def test_cli_relays_and_logs_each_datagram(
    echo: Echo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server_addr, _ = echo
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOCALHOST, 0))
        port = probe.getsockname()[1]  # free now; the CLI binds it a moment later
    argv = [
        "--listen",
        f"{LOCALHOST}:{port}",
        "--server",
        f"{LOCALHOST}:{server_addr[1]}",
        "--verbose",
        "--duration",
        "0.5",
        "--seed",
        "1",
    ]
    run = asyncio.create_task(asyncio.to_thread(main, argv))
    transport, inbox = await endpoint(Inbox, remote_addr=(LOCALHOST, port))
    try:
        # The CLI starts in another thread: retry, as any UDP client must, until the echo comes.
        for _ in range(50):
            transport.sendto(b"ping")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(inbox.wait_for(1), 0.05)
                break
        assert inbox.payloads[:1] == [b"echo:ping"]
    finally:
        transport.close()
    assert await asyncio.wait_for(run, TIMEOUT) == 0
    out = capsys.readouterr().out
    me = f"{LOCALHOST}:{transport.get_extra_info('sockname')[1]}"
    assert f"up   {me}" in out and f"down {me}" in out and "forwarded" in out
    assert "summary up" in out and "summary down" in out


async def test_a_failing_observer_breaks_neither_relay_nor_capture(
    echo: Echo, make_client: MakeClient, tmp_path: Path
) -> None:
    server_addr, _ = echo
    capture = tmp_path / "wire.jsonl"

    def broken(event: DatagramEvent) -> None:
        raise RuntimeError("observer bug")

    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        async with await start_proxy(
            (LOCALHOST, 0), server_addr, capture=capture, on_datagram=broken
        ) as proxy:
            client = await make_client(proxy)
            client.send(b"still works")
            assert await client.inbox.wait_for(1) == [b"echo:still works"]
    finally:
        loop.set_exception_handler(None)
    assert len(capture.read_text().splitlines()) == 2
    assert errors and all(isinstance(e.get("exception"), RuntimeError) for e in errors)
