"""`labchat-bench --relays 1,2,4`: one big room through several relays of a NATS cluster, beside the
single SQLite server in the same run.

Each row starts afresh: the single server first (the reference), then for each relay count a new
three-node JetStream cluster on loopback (labchat/bench/nats_cluster.py, as the tests use) and that
many relay processes on it, each the bench's server process (server_proc.py: the same settings as
the reference row) on the cluster's message path, each on its own port. The clients are spread over
the relays round-robin (client i on relay i mod N), all in one room (`lobby`), and every client
both sends and receives, as in `--mode fixed`. A row reports what the fixed mode does, with the
relays' figures added up (CPU, deliveries, datagrams), plus:

- `vs_single`: the row's deliveries/s over the single server's;
- `busiest_relay_cpu`: the busiest relay's share of a core (the one that saturates first);
- `nats_cpu`: the three NATS nodes' CPU together, as a share of a core.

What it measures, honestly: on a machine with few cores the clients (a Python core each for ≈25 000
deliveries/s), the NATS nodes and the relays all share them, so the totals stop growing once the
cores are busy; the per-relay CPU shows what a deployment with a core (or a machine) per relay gains.
docs/cluster.md and docs/performance.md hold the figures of a run and say how to read them.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from . import procinfo
from .load import WorkerPool
from .nats_cluster import NatsCluster
from .runner import Bench
from .server_proc import BenchServer, ServerOptions, settings_note
from .stats import Histogram

#: How long a relay may take to start, connect to NATS and follow its rooms.
RELAY_START_S = 60.0


class RelayGroup:
    """N bench server processes on one NATS cluster, seen by `Bench.step` as one server."""

    local = True
    pid = None

    def __init__(self, count: int, bench: Bench, base: Path) -> None:
        self.nats: NatsCluster | None = None
        self.servers: list[BenchServer] = []
        try:
            if count:
                self.nats = NatsCluster(base / "nats", name="labchat-bench").start()
                key_file = str(base / "shared.key")
                options = ServerOptions(uvloop=bench.s.uvloop, max_s=bench.s.max_time + 60,
                                        cluster=tuple(self.nats.urls), key_file=key_file)
                for _ in range(count):
                    self.servers.append(BenchServer(options))
            else:
                self.servers.append(BenchServer(ServerOptions(uvloop=bench.s.uvloop,
                                                              max_s=bench.s.max_time + 60)))
        except BaseException:
            self.stop()
            raise
        self.host, self.port = self.servers[0].host, self.servers[0].port
        self.addresses = [(s.host, s.port) for s in self.servers]

    def stats(self) -> dict[str, Any]:
        """Every relay's figures added up (the machine-wide kernel counter taken once)."""
        each = [s.stats() for s in self.servers]
        out: dict[str, Any] = {"relay_cpu_s": [e["cpu_s"] for e in each], "nats_cpu_s": self.nats_cpu_s()}
        for key in ("online", "sessions", "internal_errors", "logged_errors", "frames_retransmitted",
                    "db_bytes", "db_used_bytes"):
            out[key] = sum(e.get(key) or 0 for e in each)
        for key in ("cpu_s", "rss_bytes", "hwm_bytes"):
            values = [e.get(key) for e in each]
            out[key] = None if None in values else sum(values)  # type: ignore[arg-type]
        out["time"] = max(e["time"] for e in each)
        out["udp_rcvbuf_errors"] = each[0].get("udp_rcvbuf_errors")
        out["first_error"] = next((e["first_error"] for e in each if e.get("first_error")), None)
        out["relay"] = {k: sum(e["relay"][k] for e in each) for k in each[0]["relay"]}
        for key in ("wakeups", "wakeups_cpu"):
            merged = Histogram()
            for e in each:
                merged.merge(Histogram.from_state(e[key]))
            out[key] = merged.to_state()
        return out

    def nats_cpu_s(self) -> float | None:
        if self.nats is None:
            return None
        samples = [procinfo.sample(pid) for pid in self.nats.pids]
        return None if None in samples else sum(s.cpu_s for s in samples if s is not None)

    def stop(self) -> dict[str, Any] | None:
        for server in self.servers:
            server.stop()
        if self.nats is not None:
            self.nats.stop()
        return None


def run_relays_mode(bench: Bench) -> None:
    s = bench.s
    plan = [0, *s.relays]
    single: dict[str, Any] | None = None
    for count in plan:
        label = "single (SQLite)" if count == 0 else f"{count} relay{'s' if count > 1 else ''} + NATS"
        bench.need(s.duration + s.drain_max + s.clients * 0.1 + 30, f"the {label} row")
        bench.log(f"{label}: starting")
        try:
            row = _row(bench, count, label)
        except RuntimeError as exc:
            if count == 0:
                raise
            bench.report.notes.append(f"{label}: not measured: {exc}")
            continue
        if count == 0:
            single = row
        elif single is not None and single["deliveries_s"]:
            row["vs_single"] = row["deliveries_s"] / single["deliveries_s"]
        bench.report.rows.append(row)
    bench.report.notes.append(settings_note())
    bench.report.notes.append(
        f"relays: {s.clients} clients in one room, spread round-robin over the relays, every one sending "
        f"(together {s.rate:g} msg/s) and receiving; a fresh three-node NATS cluster per row; "
        f"this machine has {os.cpu_count()} cores for clients, relays and NATS together")


def _login(bench: Bench, pool: WorkerPool, clients: int) -> dict[str, Any]:
    """Log every client in, with more time than the other modes give: a room of 1000 is announced
    to itself (each login to every member: O(N²) on the single server) while the clients, the relays
    and NATS share the machine's cores."""
    timeout = 30.0 + clients * 0.2 + clients / bench.s.login_pace
    bench.need(timeout, f"logging in {clients} clients")
    bench.log(f"logging in {clients} clients at {bench.s.login_pace:g}/s")
    got = pool.login(bench.s.login_pace, timeout)
    if got["error_count"]:
        raise RuntimeError(f"{got['error_count']} of {clients} clients could not log in: "
                           + "; ".join(got["errors"][:3]))
    return got


def _row(bench: Bench, count: int, label: str) -> dict[str, Any]:
    s = bench.s
    with tempfile.TemporaryDirectory(prefix="labchat-bench-relays-") as tmp:
        group = RelayGroup(count, bench, Path(tmp))
        pool: WorkerPool | None = None
        try:
            processes = bench.processes_for(s.clients, s.rate)
            pool = WorkerPool(group.host, group.port, s.clients, processes, uvloop=s.uvloop,
                              max_s=s.max_time + 60, profile=s.profile_clients, addresses=group.addresses)
            got = _login(bench, pool, s.clients)
            time.sleep(min(2.0, 0.5 + s.clients / 1000))  # let the login fan-out settle
            before = group.stats()
            wall0 = time.monotonic()
            row = bench.step(group, pool, 1, s.clients, s.rate, s.duration)  # type: ignore[arg-type]
            wall = time.monotonic() - wall0
            after = group.stats()
        finally:
            if pool is not None:
                pool.stop()
            group.stop()
    row.update(label=label, relays=count, login_s=got["elapsed_s"], processes=processes)
    relay_cpu = [(b - a) / wall for a, b in zip(before["relay_cpu_s"], after["relay_cpu_s"], strict=True)
                 if a is not None and b is not None]
    row["busiest_relay_cpu"] = max(relay_cpu) if relay_cpu and count else None
    if before["nats_cpu_s"] is not None and after["nats_cpu_s"] is not None:
        row["nats_cpu"] = (after["nats_cpu_s"] - before["nats_cpu_s"]) / wall
    return row
