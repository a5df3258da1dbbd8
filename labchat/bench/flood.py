"""`labchat-bench --mode flood`: a login flood into a full room, and what it costs the server.

The issue this answers: one process registered 679 accounts in 40 s, and the server's memory went
from 39 to 103 MB because every bot's JOINED went to every member (N bots into a room of N: N^2
frames, each held until acknowledged). The mode runs the same flood twice, each time on a fresh
server: once with JOINED/LEFT sent one by one whatever the rate (the old behaviour), once with the
default policy (room.py `MembershipFlow`: one PRESENCE refresh per interval during a flood).

Each round: `--clients` members log in and stay; then `--rate` x `--duration` bots (new names, so
each is a registration) log in at `--rate` per second, and all leave together. Reported per round:
server CPU and datagrams sent during the flood, its memory (VmRSS before, peak, after), and the
database's size (file and pages in use) at the end.
"""

from __future__ import annotations

import time
from typing import Any

from .load import WorkerPool
from .runner import Bench
from .server_proc import BenchServer, ServerOptions

#: The old behaviour: no room ever coalesces (a bucket that never runs dry).
ONE_BY_ONE: tuple[tuple[str, Any], ...] = (
    ("membership_events_per_s", 1e9),
    ("membership_events_burst", 10**9),
)
#: The server has settled when it sends fewer datagrams than this per `SETTLE_STEP_S` (keepalive
#: acknowledgements go on meanwhile: ~N/7 per second).
SETTLE_DATAGRAMS = 200
SETTLE_STEP_S = 0.5
SETTLE_MAX_S = 60.0


def _settle(server: BenchServer) -> dict[str, Any]:
    """Wait (bounded) until the server's output has died down; its last stats."""
    last = server.stats()
    deadline = time.monotonic() + SETTLE_MAX_S
    while time.monotonic() < deadline:
        time.sleep(SETTLE_STEP_S)
        now = server.stats()
        if now["relay"]["datagrams_sent"] - last["relay"]["datagrams_sent"] < SETTLE_DATAGRAMS:
            return now
        last = now
    return last


def flood_round(bench: Bench, label: str, relay: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    s = bench.s
    bots = max(1, round(s.rate * s.duration))
    bench.need(s.clients / s.login_pace + bots / s.rate + 15, f"the {label} round")
    bench.log(f"{label}: {s.clients} members, then {bots} bots at {s.rate:g}/s")
    server = BenchServer(ServerOptions(uvloop=s.uvloop, max_s=s.max_time + 60, relay=relay))
    pools: list[WorkerPool] = []
    try:
        members = WorkerPool(server.host, server.port, s.clients, 1, uvloop=s.uvloop,
                             max_s=s.max_time + 60)
        pools.append(members)
        bench.login(members, s.clients)
        before = _settle(server)
        flood = WorkerPool(server.host, server.port, bots, 1, uvloop=s.uvloop,
                           max_s=s.max_time + 60, first_index=s.clients)
        pools.append(flood)
        wall0 = time.monotonic()
        got = flood.login(s.rate, bots / s.rate + 20.0 + bots * 0.06)
        login_s = time.monotonic() - wall0
        joined = _settle(server)
        flood.stop()  # every bot says BYE at once
        pools.remove(flood)
        after = _settle(server)
        wall = time.monotonic() - wall0
    finally:
        for pool in pools:
            pool.stop()
        server.stop()
    mb = 2**20
    row: dict[str, Any] = {
        "label": label,
        "clients": s.clients,
        "bots": bots,
        "bots_logged_in": got["logged_in"],
        "login_s": login_s,
        "duration_s": wall,
        "server_cpu_s": after["cpu_s"] - before["cpu_s"],
        "server_cpu": (after["cpu_s"] - before["cpu_s"]) / max(1e-9, after["time"] - before["time"]),
        "server_datagrams_out": after["relay"]["datagrams_sent"] - before["relay"]["datagrams_sent"],
        "server_rss_mb": before["rss_bytes"] / mb,
        "server_rss_joined_mb": joined["rss_bytes"] / mb,
        "server_peak_joined_mb": joined["hwm_bytes"] / mb,
        "server_peak_mb": after["hwm_bytes"] / mb,
        "server_rss_after_mb": after["rss_bytes"] / mb,
        "db_mb": after["db_bytes"] / mb,
        "db_used_mb": after["db_used_bytes"] / mb,
        "lost": 0,
        "duplicated": 0,
    }
    row["flood"] = (
        f"{bots} bots ({got['logged_in']} logged in, {login_s:.1f} s) into {s.clients} members: "
        f"server CPU {row['server_cpu_s']:.1f} s, {row['server_datagrams_out']:,} datagrams out; "
        f"RSS {row['server_rss_mb']:.0f} MB -> {row['server_rss_joined_mb']:.0f} MB with the bots "
        f"(peak {row['server_peak_joined_mb']:.0f}) -> {row['server_rss_after_mb']:.0f} MB after they "
        f"left (peak {row['server_peak_mb']:.0f}); "
        f"database {row['db_mb']:.2f} MB ({row['db_used_mb']:.2f} MB in use)"
    )
    return row


def run_flood_mode(bench: Bench) -> None:
    for label, relay in (("one by one", ONE_BY_ONE), ("coalesced", ())):
        bench.report.rows.append(flood_round(bench, label, relay))
    bench.report.notes.append(
        "flood: each bot is a new account (a registration); the database holds their accounts, "
        "history is bounded by --history-days/--history-max-mb (none is written here)")
