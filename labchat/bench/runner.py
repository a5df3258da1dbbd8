"""The modes, as sequences of steps against one server process and a pool of client workers.

Every mode returns a `Report`: a list of rows (one per step or size) plus notes. Server CPU is the
server process's user+system time over the step's wall time (1.0 = one core busy); memory is its
resident set (VmRSS / VmHWM). Both are None when the server is not ours (--server).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..compile import status as compile_status
from .ceiling import raw_sendto_rate
from .load import WorkerPool, merge_step
from .server_proc import BenchServer, RemoteServer, ServerOptions, settings_note
from .stats import Histogram

#: A step fails the ramp when its p99 passes this (the issue's target).
RAMP_P99_LIMIT_MS = 50.0
#: Clients that log in together, then leave, before the server's memory baseline is taken (see
#: `Bench.warm_up`), and how long to wait for the server to forget their sessions.
WARMUP_CLIENTS = 8
WARMUP_WAIT_S = 5.0
#: How long the first client may take to log in to a server given with --server.
PROBE_TIMEOUT_S = 5.0


MEMORY_NOTE = (f"KB/client: server VmRSS growth while the clients log in, divided by their number; "
               f"the baseline is taken after {WARMUP_CLIENTS} warm-up clients have logged in and left "
               "(one-time costs such as the scrypt threads are not charged to the clients)")


class OutOfTime(Exception):
    """The overall time bound would be passed by the next step."""


@dataclass
class Settings:
    mode: str = "fixed"
    clients: int = 100
    senders: int | None = None  # None: every client sends
    rate: float = 1000.0
    duration: float = 10.0
    processes: int = 0  # 0: automatic
    server: tuple[str, int] | None = None
    profile: bool = False
    profile_clients: bool = False
    uvloop: bool = False
    max_time: float = 300.0
    login_pace: float = 250.0
    ramp_factor: float = 1.5
    ramp_max_steps: int = 12
    idle_window: float = 10.0
    curve_sizes: tuple[int, ...] = (10, 100, 1000)
    curve_deliveries: float = 5_000.0
    drain_max: float = 10.0
    ceiling_s: float = 1.0
    #: Rooms the clients are spread over (`--rooms`); the rooms mode compares 1 with this.
    rooms: int = 1
    #: Rooms mode: empty rooms the server holds besides the busy ones, for the third row.
    held_rooms: int = 900
    #: Relays mode (`--relays`): relay counts, a row each beside the single server.
    relays: tuple[int, ...] = (1, 2, 4)


@dataclass
class Report:
    mode: str
    settings: dict[str, Any]
    ceiling_sendto_s: float | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    best: dict[str, Any] | None = None
    profile: str | None = None
    elapsed_s: float = 0.0
    #: "pure Python" or "compiled (mypyc)" (`make fast`): the figures differ, so every report says.
    build: str = field(default_factory=compile_status)


class Bench:
    def __init__(self, settings: Settings, log: Callable[[str], None] = lambda s: None) -> None:
        self.s = settings
        self.log = log
        self.t0 = time.monotonic()
        self.report = Report(settings.mode, {k: v for k, v in vars(settings).items()})
        self.report.notes.append(f"labchat build: {self.report.build}")

    # ------------------------------------------------------------ time

    def left(self) -> float:
        return self.s.max_time - (time.monotonic() - self.t0)

    def need(self, seconds: float, what: str) -> None:
        if seconds > self.left():
            raise OutOfTime(f"{what} needs ~{seconds:.0f} s but only {max(0.0, self.left()):.0f} s are left "
                            f"(--max-time {self.s.max_time:g})")

    # ------------------------------------------------------------ pieces

    def processes_for(self, clients: int, rate: float) -> int:
        """Worker processes for `clients` receiving `rate` msg/s: several only where one would be the
        bottleneck. A worker spends ≈40 µs of CPU per delivery; below ≈20 000 deliveries/s (under
        a core) one worker keeps up, and a second would only compete with the server for the
        machine's cores (measured at 100 × 100 msg/s: p99 5-6 ms with one, 7-9 ms with two). Large
        rooms get two anyway: every login is announced to every member."""
        if self.s.processes > 0:
            return self.s.processes
        deliveries_s = rate * max(0, clients - 1)
        return 1 if clients <= 200 and deliveries_s <= 20_000 else 2

    def start_server(self, held_rooms: int = 0) -> BenchServer | RemoteServer:
        if self.s.server is not None:
            self.report.notes.append(
                f"target {self.s.server[0]}:{self.s.server[1]} is not ours: server CPU and memory "
                "are not available, and its rate limit (default 100 msg/s per user) applies")
            return RemoteServer(*self.s.server)
        server = BenchServer(ServerOptions(profile=self.s.profile, uvloop=self.s.uvloop,
                                           max_s=self.s.max_time + 60, held_rooms=held_rooms))
        for note in (settings_note(), MEMORY_NOTE):
            if note not in self.report.notes:
                self.report.notes.append(note)
        return server

    def stop_server(self, server: BenchServer | RemoteServer) -> None:
        final = server.stop()
        if final and final.get("profile"):
            self.report.profile = final["profile"]

    def ceiling(self) -> float:
        if self.report.ceiling_sendto_s is None:
            self.log(f"raw ceiling: blocking 200-byte sendto loop for {self.s.ceiling_s:g} s")
            self.report.ceiling_sendto_s = raw_sendto_rate(self.s.ceiling_s)
        return self.report.ceiling_sendto_s

    def login(self, pool: WorkerPool, clients: int) -> dict[str, Any]:
        timeout = 20.0 + clients * 0.06 + clients / self.s.login_pace  # joins are O(N²): ~80 s for 1000
        self.need(timeout, f"logging in {clients} clients")
        self.log(f"logging in {clients} clients at {self.s.login_pace:g}/s")
        got = pool.login(self.s.login_pace, timeout)
        if got["error_count"]:
            raise RuntimeError(f"{got['error_count']} of {clients} clients could not log in: "
                               + "; ".join(got["errors"][:3]))
        return got

    def step(self, server: BenchServer | RemoteServer, pool: WorkerPool, step: int, clients: int,
             rate: float, duration: float) -> dict[str, Any]:
        self.need(duration + self.s.drain_max + 5, f"a {duration:g} s step")
        self.log(f"step {step}: {clients} clients, {rate:g} msg/s for {duration:g} s")
        before = server.stats()
        wall0 = time.monotonic()
        results = pool.run(step, rate, duration, self.s.drain_max, self.s.senders)
        wall1 = time.monotonic()
        after = server.stats()
        row = merge_step(results, clients, pool.rooms)
        row.update({"clients": clients, "rate": rate, "duration_s": duration,
                    "senders": min(self.s.senders or clients, clients)})
        row["clients_cpu"] = row.pop("clients_cpu_s") / max(1e-9, wall1 - wall0)
        self._server_figures(row, before, after)
        ceiling = self.ceiling()
        row["ceiling_fraction"] = row["deliveries_s"] / ceiling if ceiling else None
        return row

    @staticmethod
    def _server_figures(row: dict[str, Any], before: dict[str, Any] | None,
                        after: dict[str, Any] | None) -> None:
        if before is None or after is None or before.get("cpu_s") is None:
            row.update(server_cpu=None, server_peak_mb=None, server_rss_mb=None)
            return
        wall = after["time"] - before["time"]
        row["server_cpu"] = (after["cpu_s"] - before["cpu_s"]) / max(1e-9, wall)
        row["server_peak_mb"] = after["hwm_bytes"] / 2**20
        row["server_rss_mb"] = after["rss_bytes"] / 2**20
        relay0, relay1 = before["relay"], after["relay"]
        row["server_relayed"] = relay1["messages_relayed"] - relay0["messages_relayed"]
        row["server_datagrams_in"] = relay1["datagrams_received"] - relay0["datagrams_received"]
        row["server_datagrams_out"] = relay1["datagrams_sent"] - relay0["datagrams_sent"]
        deliveries = relay1["deliveries"] - relay0["deliveries"]
        row["server_us_per_delivery"] = (
            (after["cpu_s"] - before["cpu_s"]) / deliveries * 1e6 if deliveries else None)
        if before.get("udp_rcvbuf_errors") is not None and after.get("udp_rcvbuf_errors") is not None:
            row["udp_rcvbuf_drops"] = after["udp_rcvbuf_errors"] - before["udp_rcvbuf_errors"]
        row["server_retransmitted"] = after.get("frames_retransmitted", 0) - before.get(
            "frames_retransmitted", 0)  # sessions that left take their counts with them
        if after.get("wakeups") is not None:  # since `before`: each snapshot starts a new histogram
            row["server_wakeup_ms"] = Histogram.from_state(after["wakeups"]).summary_ms()
            row["server_wakeup_cpu_ms"] = Histogram.from_state(after["wakeups_cpu"]).summary_ms()
        row["internal_errors"] = after.get("internal_errors", 0)
        row["server_logged_errors"] = after.get("logged_errors", 0)
        row["server_first_error"] = after.get("first_error")

    def probe(self, server: BenchServer | RemoteServer, index: int) -> None:
        """One client logs in to a server given with --server and leaves, before a hundred try: a
        wrong port or a stopped server is then one clear line within seconds, not a login timeout
        per client."""
        pool = WorkerPool(server.host, server.port, 1, 1, uvloop=self.s.uvloop, max_s=30.0,
                          first_index=index)
        try:
            got = pool.login(1000.0, PROBE_TIMEOUT_S)
        finally:
            pool.stop()
        if got["logged_in"] == 1:
            return
        errors = got["errors"]
        if not errors or "no login within" in errors[0]:
            raise RuntimeError(f"no labchat server answered at {server.host}:{server.port} within "
                               f"{PROBE_TIMEOUT_S:g} s: is it running, and is that its port?")
        raise RuntimeError(f"{server.host}:{server.port} refused the bench's first client: {errors[0]}")

    def warm_up(self, server: BenchServer | RemoteServer, first_index: int) -> None:
        """Log a few clients in at once and out again, then wait until the server has dropped them.

        Why: "KB per client" is what each connected client adds to the server. The first logins
        also pay costs a server pays once: the scrypt worker threads start, each with its own
        malloc arena that keeps its last hash buffer (about 1 MB each at the bench's cheap scrypt),
        caches fill, code paths are first run. Charged to the clients, these came to 2-3 KB per
        client at 1000 clients and ten times that at 100, so the figure depended on the room size.
        The warm-up clients log in together so that both scrypt threads start; they use names past
        the measured ones and leave before the baseline, so the room is empty again when it is taken.
        """
        if not server.local:
            self.probe(server, first_index)
            return
        pool = WorkerPool(server.host, server.port, WARMUP_CLIENTS, 1, uvloop=self.s.uvloop,
                          max_s=60.0, first_index=first_index)
        try:
            got = pool.login(max(self.s.login_pace, 1000.0), 20.0)
            if got["error_count"]:
                raise RuntimeError("warm-up clients could not log in: " + "; ".join(got["errors"][:3]))
        finally:
            pool.stop()  # each says BYE; the server drops the session after its linger time
        deadline = time.monotonic() + WARMUP_WAIT_S
        while time.monotonic() < deadline:
            stats = server.stats()
            if stats is None or stats["sessions"] == 0:
                return
            time.sleep(0.1)

    def session(
        self, clients: int, rate: float, rooms: int = 1, held_rooms: int = 0
    ) -> tuple[BenchServer | RemoteServer, WorkerPool, dict[str, Any]]:
        """A server, a pool of logged-in clients, and the server's memory cost per client: its
        VmRSS growth while the clients log in, from a baseline taken after a warm-up (`warm_up`)."""
        server = self.start_server(held_rooms)
        pool: WorkerPool | None = None
        try:
            cold = server.stats()
            self.warm_up(server, first_index=clients)
            before = server.stats()
            processes = self.processes_for(clients, rate)
            pool = WorkerPool(server.host, server.port, clients, processes,
                              uvloop=self.s.uvloop, max_s=self.s.max_time + 60,
                              profile=self.s.profile_clients, rooms=rooms)
            got = self.login(pool, clients)
            time.sleep(min(2.0, 0.5 + clients / 1000))  # let the login fan-out settle
            after = server.stats()
        except BaseException:
            if pool is not None:
                pool.stop()
            self.stop_server(server)
            raise
        info: dict[str, Any] = {"login_s": got["elapsed_s"], "processes": processes}
        if cold is not None and before is not None and after is not None and before.get("rss_bytes"):
            info["server_kb_per_client"] = (after["rss_bytes"] - before["rss_bytes"]) / clients / 1024
            # The same from the server as it started, one-time costs included (the JSON shows both).
            info["server_kb_per_client_cold"] = (after["rss_bytes"] - cold["rss_bytes"]) / clients / 1024
            info["server_rss_idle_mb"] = after["rss_bytes"] / 2**20
        else:
            info["server_kb_per_client"] = None
        return server, pool, info

    # ------------------------------------------------------------ modes

    def run(self) -> Report:
        if self.s.mode == "tui":
            from .tui_latency import _factory

            _factory()  # fail in one line, now, if the app is not there
        if self.s.mode != "core":
            self.ceiling()  # first, while nothing else of ours is running
        mode = getattr(self, f"mode_{self.s.mode}")
        try:
            mode()
        except OutOfTime as exc:
            self.report.notes.append(f"stopped early: {exc}")
        self.report.elapsed_s = time.monotonic() - self.t0
        return self.report

    def mode_fixed(self) -> None:
        server, pool, info = self.session(self.s.clients, self.s.rate, self.s.rooms)
        try:
            row = self.step(server, pool, 1, self.s.clients, self.s.rate, self.s.duration)
            row.update(info, label="fixed" if self.s.rooms == 1 else f"fixed, {self.s.rooms} rooms")
            self.report.rows.append(row)
        finally:
            pool.stop()
            self.stop_server(server)

    def mode_ramp(self) -> None:
        top_rate = self.s.rate * self.s.ramp_factor ** (self.s.ramp_max_steps - 1)
        server, pool, info = self.session(self.s.clients, top_rate)  # workers for the last step
        rate = self.s.rate
        try:
            for step in range(1, self.s.ramp_max_steps + 1):
                if self.left() < self.s.duration + self.s.drain_max + 10:
                    self.report.notes.append("ramp stopped by the time bound")
                    break
                row = self.step(server, pool, step, self.s.clients, rate, self.s.duration)
                row.update(info, label=f"ramp {step}")
                p99 = row["latency_ms"]["p99"]
                ok = (row["lost"] == 0 and row["duplicated"] == 0 and row["drained"]
                      and p99 is not None and p99 <= RAMP_P99_LIMIT_MS
                      and row["offered_msg_s"] >= 0.9 * rate)
                row["passed"] = ok
                self.report.rows.append(row)
                if not ok:
                    break
                if self.report.best is None or row["deliveries_s"] > self.report.best["deliveries_s"]:
                    self.report.best = row
                rate *= self.s.ramp_factor
        finally:
            pool.stop()
            self.stop_server(server)
        if self.report.best is None:
            self.report.notes.append(f"no step kept p99 under {RAMP_P99_LIMIT_MS:g} ms without loss")

    def mode_idle(self) -> None:
        server, pool, info = self.session(self.s.clients, self.s.rate)
        try:
            self.need(self.s.idle_window + 5, "the idle window")
            self.log(f"idle window: {self.s.idle_window:g} s of keepalives only")
            before = server.stats()
            cpu0 = pool.cpu()
            time.sleep(self.s.idle_window)
            after = server.stats()
            cpu1 = pool.cpu()
            row: dict[str, Any] = {"label": "idle", "clients": self.s.clients, "rate": 0.0,
                                   "duration_s": self.s.idle_window, "lost": 0, "duplicated": 0}
            row.update(info)
            self._server_figures(row, before, after)
            row["clients_cpu"] = (cpu1 - cpu0) / self.s.idle_window
            if before is not None and after is not None:
                row["server_online"] = after["online"]
            self.report.rows.append(row)
            self.report.notes.append("keepalive: clients PING after 6.4-8 s without sending "
                                     "(ClientConfig.keepalive_s, spread per client), so ~N/7.2 "
                                     "datagrams/s each way")
        finally:
            pool.stop()
            self.stop_server(server)

    def mode_curve(self) -> None:
        for clients in self.s.curve_sizes:
            rate = max(1.0, self.s.curve_deliveries / max(1, clients - 1))
            self.need(self.s.duration + clients / self.s.login_pace * 2 + 20, f"the {clients}-client point")
            server, pool, info = self.session(clients, rate)
            try:
                row = self.step(server, pool, 1, clients, rate, self.s.duration)
                row.update(info, label=f"curve {clients}")
                self.report.rows.append(row)
            finally:
                pool.stop()
                self.stop_server(server)
        self.report.notes.append(
            f"curve: offered rate chosen per size for ~{self.s.curve_deliveries:g} deliveries/s, "
            "so server µs per delivery and KB per client compare across sizes")

    def mode_rooms(self) -> None:
        """The same clients and the same deliveries per second, in one room and then spread over
        `rooms` rooms, then again with the server holding `held_rooms` more (empty) rooms: what a
        delivery costs must not depend on how the members are split, nor on how many rooms exist.

        With N clients in R rooms a message reaches N/R - 1 others instead of N - 1, so the spread
        rows offer (N - 1) / (N/R - 1) times the one-room rate: every row asks for the same
        deliveries per second, and their µs per delivery compare directly.
        """
        clients, rooms = self.s.clients, max(2, self.s.rooms)
        if clients // rooms < 2:
            raise RuntimeError(f"--clients {clients} over {rooms} rooms leaves fewer than 2 per room")
        spread_rate = self.s.rate * (clients - 1) / (clients / rooms - 1)
        plan = [("1 room", 1, self.s.rate, 0), (f"{rooms} rooms", rooms, spread_rate, 0)]
        if self.s.held_rooms:
            plan.append((f"{rooms} rooms of {rooms + self.s.held_rooms + 1}", rooms, spread_rate,
                         self.s.held_rooms))
        for label, n_rooms, rate, held in plan:
            self.need(self.s.duration + clients / self.s.login_pace * 2 + 10, f"the {label} row")
            server, pool, info = self.session(clients, rate, n_rooms, held)
            try:
                row = self.step(server, pool, 1, clients, rate, self.s.duration)
                row.update(info, label=label, rooms=n_rooms, held_rooms=held)
                self.report.rows.append(row)
            finally:
                pool.stop()
                self.stop_server(server)
        self.report.notes.append(
            f"rooms: {clients} clients in 1 room at {self.s.rate:g} msg/s, then in {rooms} rooms at "
            f"{spread_rate:,.0f} msg/s (the same deliveries/s); the last row's server also holds "
            f"{self.s.held_rooms} empty rooms, made before it starts")

    def mode_core(self) -> None:
        """The sans-I/O cores alone (core_cost.py): a quiet room, then a busy one."""
        from .core_cost import measure_core

        messages = max(20, int(self.s.duration * 40))
        for batch in (1, 5):
            self.need(30, f"the core measurement with batches of {batch}")
            self.log(f"core: {self.s.clients} in-memory clients, {messages} batches of {batch}")
            self.report.rows.append(measure_core(self.s.clients, messages, batch))
        self.report.notes.append("core: CPU µs per delivery in Relay and ClientConnection alone, no "
                                 "sockets or event loop; batch = messages per datagram to each member")

    def mode_tui(self) -> None:
        from .tui_latency import run_tui_mode

        run_tui_mode(self)

    def mode_relays(self) -> None:
        from .relays import run_relays_mode

        run_relays_mode(self)

    def mode_flood(self) -> None:
        from .flood import run_flood_mode

        run_flood_mode(self)
