"""The relay server under test, in its own process, so its CPU and memory are measured apart.

It is the real server (`Relay` + `serve`), configured for measuring instead of for a lab:

- a temporary database and cheap scrypt (N=2^10; the cost is stored per account, no code path changes);
- per-user rate limit raised to 10^6 msg/s, so the bench measures the server and not its throttle;
- the channel's per-host HELLO bucket raised (all simulated clients share 127.0.0.1, and the default
  50/s, burst 200, would stall 1000 logins), and the cookie thresholds with it.

The parent talks to it over a pipe: ("stats",) -> a dict of relay counters and /proc figures;
("stop",) -> a final dict (with the profile when asked). It stops by itself when the pipe closes or
its time limit passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import io
import logging
import multiprocessing
import os
import pstats
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import procinfo
from .stats import Histogram

#: Bench-wide channel limits (reported in the output, since they differ from the defaults).
HELLO_RATE_PER_S = 10_000.0
HELLO_BURST = 10_000.0
RATE_PER_S = 1_000_000.0
RATE_BURST = 1_000_000


@dataclass(frozen=True, slots=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 0
    profile: bool = False
    uvloop: bool = False
    max_s: float = 600.0
    #: RelayConfig fields to change, as (name, value) pairs (the flood mode compares policies).
    relay: tuple[tuple[str, Any], ...] = ()
    #: Empty rooms made in the database before the server starts (the rooms mode's third row).
    held_rooms: int = 0
    #: `--relays`: be one relay of the NATS cluster at these URLs (the message path of
    #: `labchat-server --cluster`), with this shared server key file; () for the single server.
    cluster: tuple[str, ...] = ()
    key_file: str | None = None


def udp_rcvbuf_errors() -> int | None:
    """Datagrams the kernel dropped, machine-wide, because a UDP receive buffer was full (Linux)."""
    try:
        with open("/proc/net/snmp", encoding="ascii") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        return int(rows[1][rows[0].index("RcvbufErrors")])
    except (OSError, IndexError, ValueError):
        return None


def settings_note() -> str:
    return (f"bench server: rate limit {RATE_PER_S:g} msg/s per user, HELLO bucket "
            f"{HELLO_RATE_PER_S:g}/s burst {HELLO_BURST:g} per host, scrypt N=2^10, temp db")


class _ErrorCounter(logging.Handler):
    """Counts errors the server logs (tracebacks in callbacks) instead of printing hundreds of them."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if self.first is None:
            exc = record.exc_info[1] if record.exc_info else None
            where = ""
            if exc is not None and exc.__traceback__ is not None:
                tb = exc.__traceback__
                frames = []
                while tb is not None:
                    frames.append(f"{Path(tb.tb_frame.f_code.co_filename).name}:"
                                  f"{tb.tb_frame.f_code.co_name}")
                    tb = tb.tb_next
                where = " at " + " > ".join(frames[-3:])
            self.first = f"{record.getMessage()[:80]}: {exc!r}{where}"


ERRORS = _ErrorCounter()


def _server_main(conn: Connection, options: ServerOptions) -> None:
    logging.basicConfig(level=logging.ERROR, handlers=[ERRORS], force=True)
    logging.getLogger("labchat").setLevel(logging.ERROR)
    profiler = cProfile.Profile() if options.profile else None
    with tempfile.TemporaryDirectory(prefix="labchat-bench-") as tmp:
        if options.uvloop:
            import uvloop  # type: ignore[import-not-found]

            runner: Any = uvloop.run
        else:
            runner = asyncio.run
        final: dict[str, Any] = {}
        try:
            if profiler is not None:
                profiler.enable()
            final = runner(_serve(conn, options, Path(tmp)))
        except Exception as exc:  # tell the parent in one line rather than let it time out
            with contextlib.suppress(OSError):
                conn.send(("error", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__))
        finally:
            if profiler is not None:
                profiler.disable()
                final["profile"] = _profile_text(profiler)
            with contextlib.suppress(OSError):
                conn.send(("final", final))


def _profile_text(profiler: cProfile.Profile, top: int = 30) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


async def _serve(conn: Connection, options: ServerOptions, tmp: Path) -> dict[str, Any]:
    from ..protocol.channel import ChannelConfig, ServerChannel
    from ..server.accounts import LoginPolicy
    from ..server.keys import load_or_create_server_key
    from ..server.relay import Relay, RelayConfig
    from ..server.store import Store
    from ..server.transport import serve
    from ..startup_gc import freeze_startup_objects

    store = Store(tmp / "bench.db", scrypt_n=2**10)
    if options.held_rooms:
        from ..server.store import RoomRecord

        for i in range(options.held_rooms):
            store.save_room(RoomRecord(f"held-{i:04d}", "bench", created_ms=int(time.time() * 1000)))
    freeze_startup_objects()  # as labchat-server does
    key = load_or_create_server_key(Path(options.key_file) if options.key_file else tmp / "bench.key")
    channel_config = ChannelConfig(
        hello_rate_per_s=HELLO_RATE_PER_S, hello_burst=HELLO_BURST,
        cookie_half_open_threshold=4096, cookie_hello_rate_per_s=HELLO_RATE_PER_S,
        cookie_hello_burst=HELLO_BURST, max_half_open=4096,
        max_prelogin_per_host=4096,  # every simulated client is on 127.0.0.1: one host to the server
    )  # fmt: skip
    relay_options: dict[str, Any] = {
        # Every simulated client is a new account from 127.0.0.1: no registrations-per-address bound.
        "login": LoginPolicy(registrations_per_hour=0),
        **dict(options.relay),
    }
    relay_config = RelayConfig(rate_per_s=RATE_PER_S, rate_burst=RATE_BURST, **relay_options)
    if options.cluster:
        relay, close_cluster = await _cluster_relay(store, ServerChannel(key, channel_config), relay_config,
                                                    options)
    else:
        relay = Relay(store, ServerChannel(key, channel_config), relay_config)
    server = await serve(options.host, options.port, relay)
    if options.cluster:
        bridge = await close_cluster(server)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # How long each wake-up for incoming datagrams keeps the server busy (read, commit, fan out, send):
    # the server's own share of the latency, apart from the simulated clients sharing its cores.
    # Wall time and CPU time: they differ by the time the server waited for a core.
    wakeups, wakeups_cpu = Histogram(), Histogram()
    handle_readable = server.protocol._on_readable
    clock, cpu_clock = time.perf_counter, time.thread_time

    def timed_readable() -> None:
        started, started_cpu = clock(), cpu_clock()
        handle_readable()
        wakeups_cpu.add(cpu_clock() - started_cpu)
        wakeups.add(clock() - started)

    fd = server.protocol.sock.fileno()
    loop.remove_reader(fd)
    loop.add_reader(fd, timed_readable)

    def snapshot() -> dict[str, Any]:
        nonlocal wakeups, wakeups_cpu
        s = procinfo.sample(os.getpid())
        since_last, since_last_cpu = wakeups, wakeups_cpu
        wakeups, wakeups_cpu = Histogram(), Histogram()
        return {
            "wakeups": since_last.to_state(),
            "wakeups_cpu": since_last_cpu.to_state(),
            "relay": asdict(relay.stats),
            "online": relay.online(),
            "sessions": len(relay.sessions),
            "internal_errors": server.protocol.internal_errors,
            "logged_errors": ERRORS.count,
            "first_error": ERRORS.first,
            "cpu_s": s.cpu_s if s else None,
            "rss_bytes": s.rss_bytes if s else None,
            "hwm_bytes": s.hwm_bytes if s else None,
            "time": time.monotonic(),
            "frames_retransmitted": sum(
                sess.link.stats.frames_retransmitted for sess in relay.sessions.values()),
            "udp_rcvbuf_errors": udp_rcvbuf_errors(),
            "db_bytes": sum(p.stat().st_size for p in tmp.glob("bench.db*")),
            "db_used_bytes": store.used_bytes(),
        }

    def on_command(command: tuple[Any, ...]) -> None:
        if command[0] == "stats":
            conn.send(("stats", snapshot()))
        elif command[0] == "stop":
            stop.set()

    def reader() -> None:
        # A thread, because Connection.recv blocks; commands are handed to the loop thread.
        try:
            while True:
                command = conn.recv()
                loop.call_soon_threadsafe(on_command, command)
                if command[0] == "stop":
                    return
        except (EOFError, OSError):
            loop.call_soon_threadsafe(stop.set)  # the parent is gone: stop too

    threading.Thread(target=reader, daemon=True, name="bench-control").start()
    host, port = server.address
    conn.send(("ready", host, port, os.getpid()))
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), options.max_s)
    final = snapshot()
    if options.cluster:
        await bridge.close()
    await server.stop(grace_s=0.0)
    if options.cluster:
        await bridge.conn.close()
    return final


async def _cluster_relay(store: Any, channel: Any, config: Any, options: ServerOptions) -> tuple[Any, Any]:
    """A relay on the cluster's message path, as `labchat-server --cluster` builds it, and the
    coroutine function that joins the cluster once the relay serves (returns the bridge).

    Raises:
        RuntimeError: this labchat has no cluster message path (one line for the report).
    """
    try:
        from ..server.backplane import ClusterBackplane  # type: ignore[import-not-found,unused-ignore]
        from ..server.cluster.bridge import ClusterBridge  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise RuntimeError(f"no cluster message path in this labchat ({exc})") from None
    from ..server.cluster.connection import ClusterConnection
    from ..server.relay import Relay

    relay = Relay(store, channel, config, None, ClusterBackplane())  # type: ignore[call-arg,unused-ignore]

    async def join(server: Any) -> Any:
        conn = await ClusterConnection.connect(list(options.cluster), name="labchat-bench-relay")
        return await ClusterBridge.start(server, conn)

    return relay, join


class BenchServer:
    """Parent-side handle of the server process."""

    def __init__(self, options: ServerOptions) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_server_main, args=(child, options), name="labchat-bench-server",
                                 daemon=True)
        self._proc.start()
        child.close()
        reply = self._recv("ready", 30.0)
        _, self.host, self.port, self.pid = reply
        self.local = True
        self.final: dict[str, Any] | None = None

    def _recv(self, kind: str, timeout: float) -> tuple[Any, ...]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._conn.poll(left):
                raise TimeoutError(f"the bench server did not answer {kind!r} within {timeout:g} s")
            reply = self._conn.recv()
            if reply[0] == kind:
                return reply  # type: ignore[no-any-return]
            if reply[0] == "error":
                raise RuntimeError(f"the bench server failed: {reply[1]}")

    def stats(self) -> dict[str, Any]:
        self._conn.send(("stats",))
        return self._recv("stats", 30.0)[1]  # type: ignore[no-any-return]

    def stop(self) -> dict[str, Any] | None:
        if self.final is not None or not self._proc.is_alive():
            return self.final
        try:
            self._conn.send(("stop",))
            self.final = self._recv("final", 30.0)[1]
        except (OSError, EOFError, TimeoutError):
            self.final = None
        self._proc.join(10.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5.0)
        self._conn.close()
        return self.final


class RemoteServer:
    """A server given with --server: we can load it but not see its CPU or memory."""

    local = False
    pid = None

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.final: dict[str, Any] | None = None

    def stats(self) -> None:
        return None

    def stop(self) -> None:
        return None
