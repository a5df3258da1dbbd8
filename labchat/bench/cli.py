"""`labchat-bench`: start a server (or target one), simulate clients, print a table (or --json).

    labchat-bench                                  fixed load: 100 clients, 1000 msg/s, 10 s
    labchat-bench --mode ramp                      highest load whose p99 stays under 50 ms
    labchat-bench --mode idle --clients 1000       memory per client and keepalive CPU
    labchat-bench --mode curve                     cost at 10, 100 and 1000 clients
    labchat-bench --mode tui                       key-to-screen delay of the Textual app under load
    labchat-bench --mode flood                     600 bots log in to a room of 300 and leave: server
                                                   memory, CPU and database, JOINED one by one vs coalesced
    labchat-bench --mode login-storm               300 clients log in at once against real scrypt
    labchat-bench --mode rooms                     1000 clients in 1 room, then in 20 rooms, then in 20
                                                   of 921 rooms: the same deliveries/s, what each costs
    labchat-bench --mode file                      a 200 MB file between two clients beside a plain TCP
                                                   copy, at 0 and 2 % loss, and chat p99 meanwhile
    labchat-bench --relays 1,2,4                   one room of 1000 through 1, 2 and 4 relays of a NATS
                                                   cluster, beside the single SQLite server

Everything runs on 127.0.0.1 and stops by itself within --max-time seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from ..i18n import _, add_lang_argument, choose_language
from .runner import Bench, Report, Settings

MODES = ("fixed", "ramp", "idle", "tui", "curve", "core", "flood", "login-storm", "rooms", "file", "relays")
DEFAULTS = {  # per mode: clients, rate (msg/s into the room), duration (s)
    "fixed": (100, 1000.0, 10.0),
    "ramp": (100, 200.0, 3.0),
    "idle": (1000, 0.0, 10.0),
    "curve": (0, 0.0, 5.0),
    "tui": (1, 1000.0, 5.0),
    "core": (100, 0.0, 5.0),
    "flood": (300, 20.0, 30.0),  # members; bot logins per second; seconds of bot logins
    "login-storm": (300, 0.0, 120.0),  # duration: how long the clients may take to get in
    "rooms": (1000, 10.0, 10.0),  # clients; msg/s in the one-room row (the spread rows: same deliveries/s)
    "file": (2, 20.0, 10.0),  # sender and receiver; chat lines/s beside the file; s of chat before and after
    "relays": (1000, 20.0, 10.0),  # members of the one room; msg/s into it; seconds per row
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(2, _("labchat-bench: {message} (see --help)").format(message=message) + "\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="labchat-bench", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--mode", choices=MODES, default="fixed")
    p.add_argument("--clients", type=int, default=None, metavar="N", help="simulated clients")
    p.add_argument("--senders", type=int, default=None, metavar="K",
                   help="only the first K clients send (default: all); every client receives")
    p.add_argument("--rate", type=float, default=None, metavar="MSG_S",
                   help="messages per second into the room, all senders together (ramp: first step; "
                        "flood: bot logins per second)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="seconds of load per step (idle: the idle window; flood: of bot logins; file: of "
                        "chat without the file, before it and again after it)")
    p.add_argument("--processes", type=int, default=0, metavar="P",
                   help="client worker processes (default: 1 while the clients receive up to 20 000 "
                        "deliveries/s and number at most 200, else 2)")
    p.add_argument("--server", default=None, metavar="HOST:PORT",
                   help="load an existing server instead of starting one (no server CPU/memory then)")
    p.add_argument("--rooms", type=int, default=None, metavar="R",
                   help="spread the clients over R rooms (fixed: default 1; rooms mode: default 20)")
    p.add_argument("--held-rooms", type=int, default=900, metavar="H",
                   help="rooms mode: empty rooms the server also holds in its last row (default 900)")
    p.add_argument("--sizes", default="10,100,1000", metavar="N,N,..", help="curve: client counts")
    p.add_argument("--deliveries", type=float, default=5_000.0, metavar="D_S",
                   help="curve: target deliveries per second at every size (default 5000)")
    p.add_argument("--ramp-steps", type=int, default=12, metavar="K", help="ramp: at most K steps")
    p.add_argument("--ramp-factor", type=float, default=1.5, metavar="F",
                   help="ramp: each step offers F times the previous rate (default 1.5)")
    p.add_argument("--ceiling-seconds", type=float, default=1.0, metavar="S",
                   help="how long the raw sendto ceiling is measured (default 1 s)")
    p.add_argument("--login-pace", type=float, default=250.0, metavar="N_S", help="logins per second")
    p.add_argument("--login-workers", type=int, default=2, metavar="N",
                   help="login-storm: the server's password-check workers (default 2, as labchat-server)")
    p.add_argument("--file-mb", type=float, default=200.0, metavar="MB",
                   help="file: size of the file sent (default 200)")
    p.add_argument("--losses", default="0,2", metavar="PCT,PCT",
                   help="file: random loss each way, one transfer per value, in percent (default 0,2)")
    p.add_argument("--relays", default=None, metavar="N,N,..",
                   help="relays mode (chosen by this flag): relay counts, each a row beside the single "
                        "server (default 1,2,4)")
    p.add_argument("--profile", action="store_true",
                   help="run the server under cProfile and print its top functions (slows it down)")
    p.add_argument("--profile-clients", action="store_true",
                   help="run the client workers under cProfile; their top functions go to stderr")
    p.add_argument("--uvloop", action="store_true", help="run server and clients on uvloop (labchat[fast])")
    p.add_argument("--max-time", type=float, default=300.0, metavar="S",
                   help="hard bound on the whole run (default 300 s)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    add_lang_argument(p)
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    if args.relays is not None and args.mode == "fixed":
        args.mode = "relays"  # `--relays 1,2,4` alone chooses the mode
    clients, rate, duration = DEFAULTS[args.mode]
    s = Settings(mode=args.mode)
    s.clients = args.clients if args.clients is not None else clients
    s.rate = args.rate if args.rate is not None else rate
    s.duration = args.duration if args.duration is not None else duration
    s.processes = args.processes
    s.rooms = args.rooms if args.rooms is not None else (20 if args.mode == "rooms" else 1)
    s.held_rooms = args.held_rooms
    if not 1 <= s.rooms <= 999 or not 0 <= s.held_rooms <= 970:
        raise ValueError("--rooms must be 1-999 and --held-rooms 0-970 (a server holds 1000 rooms)")
    if s.rooms > 1 and args.mode not in ("fixed", "rooms"):
        raise ValueError("--rooms applies to --mode fixed and --mode rooms")
    s.senders = args.senders
    if args.mode == "relays":
        s.relays = _relay_counts(args.relays or "1,2,4")
    elif args.relays is not None:
        raise ValueError("--relays chooses the relays mode: leave out --mode, or give --mode relays")
    if s.senders is not None and s.senders < 1:
        raise ValueError("--senders must be at least 1")
    s.profile = args.profile
    s.profile_clients = args.profile_clients
    s.uvloop = args.uvloop
    s.max_time = args.max_time
    s.login_pace = args.login_pace
    s.curve_deliveries = args.deliveries
    s.ramp_max_steps = args.ramp_steps
    s.ramp_factor = args.ramp_factor
    s.ceiling_s = args.ceiling_seconds
    if s.ramp_max_steps < 1 or s.ramp_factor <= 1 or s.ceiling_s <= 0:
        raise ValueError("--ramp-steps must be at least 1, --ramp-factor above 1, --ceiling-seconds positive")
    s.idle_window = s.duration
    if args.server:
        host, _sep, port = args.server.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--server wants HOST:PORT, not {args.server!r}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("--server must be on this machine (127.0.0.1): the bench never leaves it")
        s.server = (host.strip("[]"), int(port))
    try:
        s.curve_sizes = tuple(int(x) for x in args.sizes.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--sizes wants numbers separated by commas, not {args.sizes!r}") from None
    if args.mode != "curve" and s.clients < (1 if args.mode in ("idle", "tui") else 2):
        raise ValueError("--clients must be at least 2 (a message needs someone to receive it)")
    if s.duration <= 0 or s.max_time <= 0 or s.rate < 0 or s.login_pace <= 0:
        raise ValueError("--duration, --max-time and --login-pace must be positive, --rate not negative")
    if args.mode in ("fixed", "ramp", "flood") and s.rate <= 0:
        raise ValueError(f"--mode {args.mode} needs --rate above 0")
    if s.processes < 0:
        raise ValueError("--processes must be 0 (chosen by the load) or more")
    if s.curve_deliveries <= 0:
        raise ValueError("--deliveries must be above 0")
    if args.mode == "curve" and (not s.curve_sizes or min(s.curve_sizes) < 2):
        raise ValueError("--sizes: every size must be at least 2")
    if s.uvloop:
        try:
            import uvloop  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            raise ValueError("--uvloop needs uvloop: pip install 'labchat[fast]'") from None
    return s


def _relay_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--relays wants relay counts separated by commas, not {text!r}") from None
    if not counts or not all(1 <= c <= 16 for c in counts):
        raise ValueError("--relays: each count must be 1-16")
    return counts


def _fmt(value: Any, spec: str = ",.0f", none: str = "n/a") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return none
    return format(value, spec)


def render(report: Report, console: Console) -> None:
    table = Table(title=f"labchat-bench --mode {report.mode}", title_justify="left")
    columns = ["step", "clients", "offered msg/s", "delivered msg/s", "deliveries/s",
               "p50 ms", "p95 ms", "p99 ms", "max ms", "lost", "dup",
               "server CPU", "server peak MB", "KB/client", "of ceiling"]
    for c in columns:
        table.add_column(c, justify="left" if c == "step" else "right")
    for row in report.rows:
        lat = row.get("latency_ms") or {}
        cpu = row.get("server_cpu")
        frac = row.get("ceiling_fraction")
        table.add_row(
            str(row.get("label", "")) + ("" if row.get("passed", True) else " ✗"),
            _fmt(row.get("clients"), "d"),
            _fmt(row.get("offered_msg_s")), _fmt(row.get("delivered_msg_s")), _fmt(row.get("deliveries_s")),
            _fmt(lat.get("p50"), ".2f"), _fmt(lat.get("p95"), ".2f"), _fmt(lat.get("p99"), ".2f"),
            _fmt(lat.get("max"), ".2f"),
            _fmt(row.get("lost"), "d"), _fmt(row.get("duplicated"), "d"),
            _fmt(None if cpu is None else cpu * 100, ".1f") + ("" if cpu is None else " %"),
            _fmt(row.get("server_peak_mb"), ".1f"), _fmt(row.get("server_kb_per_client"), ".1f"),
            _fmt(None if frac is None else frac * 100, ".1f") + ("" if frac is None else " %"),
        )
    if not all("core_server_us_per_delivery" in row or "flood" in row for row in report.rows):
        console.print(table)  # the core mode has none of its columns: its figures follow as text
    if report.ceiling_sendto_s:
        console.print(f"raw ceiling (blocking 200-byte sendto loop on loopback): "
                      f"{report.ceiling_sendto_s:,.0f} datagrams/s")
    if report.best is not None:
        b = report.best
        console.print(f"best passing step: {b['label']}: {b['deliveries_s']:,.0f} deliveries/s, "
                      f"p99 {b['latency_ms']['p99']:.2f} ms")
    for row in report.rows:
        extra = []
        if row.get("server_us_per_delivery") is not None:
            extra.append(f"server {row['server_us_per_delivery']:.1f} µs CPU per delivery")
        wake = row.get("server_wakeup_ms")
        wake_cpu = row.get("server_wakeup_cpu_ms")
        if wake and wake.get("p99") is not None and wake_cpu:
            extra.append(f"server busy per wake-up p50/p99/max {wake['p50']:.2f}/{wake['p99']:.2f}/"
                         f"{wake['max']:.2f} ms (of it CPU {wake_cpu['p50']:.2f}/{wake_cpu['p99']:.2f}/"
                         f"{wake_cpu['max']:.2f})")
        if row.get("server_datagrams_in") is not None and row.get("duration_s"):
            d = row["duration_s"]
            extra.append(f"server datagrams in/out {row['server_datagrams_in'] / d:,.0f}/"
                         f"{row['server_datagrams_out'] / d:,.0f} per s")
        if row.get("udp_rcvbuf_drops") is not None:
            extra.append(f"kernel UDP buffer drops {row['udp_rcvbuf_drops']:,}, "
                         f"server retransmitted {row.get('server_retransmitted', 0):,} frames")
        if row.get("clients_cpu") is not None:
            extra.append(f"clients {row['clients_cpu'] * 100:.0f} % of a core")
        if row.get("core_server_us_per_delivery") is not None:
            extra.append(f"{row['batch']} message(s) per datagram: server "
                         f"{row['core_server_us_per_delivery']:.2f} µs, client "
                         f"{row['core_client_us_per_delivery']:.2f} µs CPU per delivery (sans-I/O)")
        if row.get("flood"):
            extra.append(row["flood"])
        if row.get("busiest_relay_cpu") is not None:
            extra.append(f"busiest relay {row['busiest_relay_cpu'] * 100:.0f} % of a core")
        if row.get("nats_cpu") is not None:
            extra.append(f"NATS (3 nodes) {row['nats_cpu'] * 100:.0f} % of a core")
        if row.get("vs_single") is not None:
            extra.append(f"{row['vs_single']:.2f} x the single server's deliveries/s")
        if row.get("tui"):
            extra.append(", ".join(f"{k} {v}" for k, v in row["tui"].items()))
        if extra:
            console.print(f"{row.get('label')}: " + "; ".join(extra), soft_wrap=True)
    errors = max((r.get("server_logged_errors") or 0 for r in report.rows), default=0)
    if errors:
        first = next(r.get("server_first_error") for r in report.rows if r.get("server_logged_errors"))
        console.print(f"note: the server logged {errors} error(s); first: {first}", soft_wrap=True,
                      markup=False, highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", soft_wrap=True, markup=False, highlight=False)
    if report.profile:
        console.print("server profile (cProfile, by own time):", markup=False)
        console.print(report.profile, markup=False, highlight=False)
    console.print(f"took {report.elapsed_s:.1f} s", markup=False)


def main(argv: list[str] | None = None) -> int:
    choose_language("labchat-bench", sys.argv[1:] if argv is None else argv)  # argparse's words too
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"labchat-bench: {exc}", file=sys.stderr)
        return 2
    # Wide enough for the table when piped to a file (Rich assumes 80 columns there).
    console = Console(stderr=args.json, highlight=False,
                      width=None if sys.stdout.isatty() else 170)

    def log(line: str) -> None:
        if not args.json:
            console.print(f"[dim]{line}[/]")

    if args.mode == "login-storm":
        return _login_storm(args, settings, console, log)
    if args.mode == "file":
        return _file(args, settings, console)

    def out_of_time(signum: int, frame: object) -> None:
        raise TimeoutError(f"the run passed --max-time {settings.max_time:g} s")

    # The hard bound: every wait inside is bounded too; this catches anything that is not.
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(math.ceil(settings.max_time + 30))
    bench = Bench(settings, log)
    try:
        report = bench.run()
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"labchat-bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        signal.alarm(0)
    if args.json:
        print(json.dumps({"mode": report.mode, "settings": report.settings,
                          "ceiling_sendto_s": report.ceiling_sendto_s, "rows": report.rows,
                          "best": report.best, "notes": report.notes, "profile": report.profile,
                          "elapsed_s": report.elapsed_s, "cpus": os.cpu_count(),
                          "build": report.build}, default=str))
    else:
        render(report, console)
    return 0


def _file(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    """A file through the real server beside a plain TCP copy, and chat meanwhile (file_transfer.py)."""
    import asyncio

    from .file_transfer import render_file_report, run_file_bench

    try:
        losses = tuple(float(x) / 100 for x in args.losses.split(",") if x.strip())
    except ValueError:
        print(f"labchat-bench: --losses wants percentages separated by commas, not {args.losses!r}",
              file=sys.stderr)
        return 2
    in_range = all(0 <= x < 1 for x in losses) and 0 < args.file_mb <= 4096
    if not losses or not in_range or settings.rate <= 0:
        print("labchat-bench: --losses must be 0-99 %, --file-mb 0-4096 and --rate above 0", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(run_file_bench(args.file_mb, losses, chat_interval_s=1 / settings.rate,
                                            chat_lead_s=settings.duration, max_s=settings.max_time))
    except OSError as exc:
        print(f"labchat-bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(report.as_dict(), default=str))
    else:
        render_file_report(report, console)
    return 0 if all(r.error is None and r.verified for r in report.rows) else 1


def _login_storm(args: argparse.Namespace, settings: Settings, console: Console,
                 log: Callable[[str], None]) -> int:
    """A class logging in at once (login_storm.py): how many got in, and when the last one did."""
    from .login_storm import run_login_storm

    if not 1 <= args.login_workers <= 64:
        print("labchat-bench: --login-workers must be 1-64", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        result = run_login_storm(settings.clients, min(settings.duration, settings.max_time),
                                 args.login_workers, log)
    except (RuntimeError, OSError) as exc:
        print(f"labchat-bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    row = result.row()
    elapsed = time.monotonic() - started
    if args.json:
        print(json.dumps({"mode": "login-storm", "rows": [row], "elapsed_s": elapsed,
                          "cpus": os.cpu_count()}, default=str))
    else:
        last = row["last_login_s"]
        console.print(f"login-storm: {row['logged_in']} of {row['clients']} clients logged in"
                      + (f", the last {last:.1f} s after the start" if last is not None else "")
                      + (f" (median {row['median_login_s']:.1f} s)" if last is not None else ""),
                      markup=False)
        console.print(f"gave up: {row['gave_up']}, refused: {row['refused']}; "
                      f"{row['queued_clients']} were told their place in the queue "
                      f"(longest: {row['max_queue_position']} ahead)", markup=False)
        srv = row["server"]
        if srv:
            console.print(f"server: scrypt N=2^{int(srv['scrypt_n']).bit_length() - 1}, "
                          f"{srv['workers']} workers, {srv['password_checks']} password checks", markup=False)
        for reason, count in row["failure_reasons"].items():
            console.print(f"  {count} x {reason}", markup=False)
        console.print(f"took {elapsed:.1f} s", markup=False)
    return 0 if row["logged_in"] == row["clients"] else 1
