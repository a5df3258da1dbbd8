"""`labchat-netem`: the command line around `start_proxy`, with output meant to be read by people.

Errors in the command line are one line on stderr and exit status 2 (1 for run-time failures such as
an address already in use), never a traceback: users of a teaching tool should see what they typed
wrong, not our internals.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import signal
import sys
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.markup import escape

from ..i18n import N_, _, add_lang_argument, choose_language
from .model import DEFAULT_REORDER_DELAY, Direction, ImpairmentConfig
from .proxy import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CLIENTS,
    Address,
    DatagramEvent,
    DirectionStats,
    NetemProxy,
    format_address,
    start_proxy,
)

PROG = "labchat-netem"
_ARROWS = {Direction.UP: "client→server", Direction.DOWN: "server→client"}
# (flag, config field, P = probability or MS = milliseconds, help): each also exists per direction.
# The help texts are translated where the parser is built (N_ marks them for the catalogue).
_SETTINGS = [
    ("loss", "loss", "P", N_("probability a datagram is dropped (0.2 or 20%%)")),
    ("duplicate", "duplicate", "P", N_("probability a datagram is delivered twice")),
    ("reorder", "reorder", "P", N_("probability a datagram is held back so later ones overtake it")),
    ("delay", "delay", "MS", N_("milliseconds added to every datagram")),
    ("jitter", "jitter", "MS", N_("each datagram's delay varies by up to ± this many milliseconds")),
    (
        "reorder-delay",
        "reorder_delay",
        "MS",
        N_("extra hold-back of a reordered datagram (default {default})"),
    ),
]


class _UsageError(Exception):
    """argparse wanted to print usage and exit; we print one line instead."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _probability(text: str) -> float:
    """`0.2` or `20%`, because both are how people say it."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("not a probability: {text!r}").format(text=text)) from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(
            _("a probability is between 0 and 1 (or 0% and 100%): {text!r}").format(text=text)
        )
    return value


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        not_ms = _("not a number of milliseconds: {text!r}")
        raise argparse.ArgumentTypeError(not_ms.format(text=text)) from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(_("milliseconds must be >= 0: {text!r}").format(text=text))
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("not a number of seconds: {text!r}").format(text=text)) from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(_("seconds must be > 0: {text!r}").format(text=text))
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("not a whole number: {text!r}").format(text=text)) from None
    if value < 1:
        raise argparse.ArgumentTypeError(_("must be at least 1: {text!r}").format(text=text))
    return value


def _address(text: str, *, listening: bool) -> Address:
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if listening and sep and not host:
        host = "0.0.0.0"  # ":9000" means every interface, as in many other tools
    if not sep or not host or not port_text.isdigit():
        raise argparse.ArgumentTypeError(_("expected HOST:PORT, got {text!r}").format(text=text))
    port = int(port_text)
    if not (0 if listening else 1) <= port <= 65535:
        raise argparse.ArgumentTypeError(_("port out of range in {text!r}").format(text=text))
    return host, port


def _listen_address(text: str) -> Address:
    """Port 0 is allowed: the system picks a free port and the banner prints it."""
    return _address(text, listening=True)


def _server_address(text: str) -> Address:
    return _address(text, listening=False)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (separate so docs and tests can inspect it)."""
    parser = _Parser(
        prog=PROG,
        description=_(
            "Relay UDP between labchat clients and a server, losing, duplicating, "
            "reordering and delaying datagrams at the rates you choose, reproducibly from a seed."
        ),
    )
    parser.add_argument(
        "--listen",
        required=True,
        type=_listen_address,
        metavar="HOST:PORT",
        help=_("where clients send (port 0 picks a free port, printed on start)"),
    )
    parser.add_argument(
        "--server",
        required=True,
        type=_server_address,
        metavar="HOST:PORT",
        help=_("the labchat server to forward to"),
    )
    for flag, dest, kind, text in _SETTINGS:
        convert = _probability if kind == "P" else _milliseconds
        words = _(text).format(default=f"{DEFAULT_REORDER_DELAY * 1000:g}")
        parser.add_argument(
            f"--{flag}",
            dest=dest,
            type=convert,
            metavar=kind,
            help=_("{help}, both directions").format(help=words),
        )
        for direction in Direction:
            parser.add_argument(
                f"--{direction}-{flag}",
                dest=f"{direction}_{dest}",
                type=convert,
                metavar=kind,
                help=_("override for {direction} only").format(direction=_ARROWS[direction]),
            )
    parser.add_argument("--seed", type=int, help=_("seed for the random fates (default: random, printed)"))
    parser.add_argument(
        "--duration",
        type=_positive_seconds,
        metavar="S",
        help=_("stop by itself after S seconds (default: until Ctrl+C)"),
    )
    parser.add_argument(
        "--capture",
        type=Path,
        metavar="PATH",
        help=_("write every datagram received, both directions, as JSON Lines"),
    )
    parser.add_argument(
        "--stats-interval",
        type=_positive_seconds,
        metavar="S",
        help=_("print the counters every S seconds"),
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help=_("print one line per datagram with its fate")
    )
    parser.add_argument(
        "--idle-timeout",
        type=_positive_seconds,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="S",
        help=_("forget a client silent this long (default: %(default)s)"),
    )
    parser.add_argument(
        "--max-clients",
        type=_positive_int,
        default=DEFAULT_MAX_CLIENTS,
        metavar="N",
        help=_("most clients at once (default: %(default)s)"),
    )
    add_lang_argument(parser)
    return parser


def _config(args: argparse.Namespace, direction: Direction) -> ImpairmentConfig:
    """A direction's settings: its own flag if given, else the shared flag, else the default."""
    values: dict[str, float] = {}
    for _flag, dest, kind, _help in _SETTINGS:
        value = getattr(args, f"{direction}_{dest}")
        if value is None:
            value = getattr(args, dest)
        if value is not None:
            values[dest] = value / 1000 if kind == "MS" else value
    return ImpairmentConfig(**values)


def _describe_config(cfg: ImpairmentConfig) -> str:
    def pct(p: float) -> str:
        return f"{p * 100:g}%"

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:g} ms"

    return (
        f"loss {pct(cfg.loss)}  duplicate {pct(cfg.duplicate)}  "
        f"reorder {pct(cfg.reorder)} (+{ms(cfg.reorder_delay)})  "
        f"delay {ms(cfg.delay)} ± {ms(cfg.jitter)}"
    )


def _describe_stats(s: DirectionStats) -> str:
    dropped = f"{s.dropped} ({s.dropped / s.received:.1%})" if s.received else "0"
    line = (
        f"received {s.received}  forwarded {s.forwarded}  [red]dropped {dropped}[/]  "
        f"[yellow]duplicated {s.duplicated}[/]  [magenta]reordered {s.reordered}[/]"
    )
    if s.rejected:
        line += f"  [bold red]rejected {s.rejected}[/]"
    if s.in_flight:
        line += f"  in flight {s.in_flight}"
    return line


def _print_stats(console: Console, proxy: NetemProxy, title: str) -> None:
    """One self-contained line per direction, so `grep summary` or `grep up` finds what you need."""
    for direction in Direction:
        label = f"{direction:<4} ({_ARROWS[direction]})"
        stats = _describe_stats(proxy.stats.of(direction))
        console.print(f"[bold]{escape(title)}[/] {label}: {stats}")


def _event_line(event: DatagramEvent) -> str:
    """One datagram for --verbose: when, which way, whose, how big, and what happened to it."""
    fate = event.fate
    if fate is None:
        why = "empty datagram" if not event.data else "too many clients"
        what = f"[bold red]rejected ({why})[/]"
    elif fate.dropped:
        what = "[red]dropped[/]"
    else:
        waits = " and ".join(f"{delay * 1000:.1f} ms" for delay in event.delays)
        what = f"{fate.label()}, delivered after {waits}"
    where = f"{event.direction:<4} {escape(event.client)}"
    return f"{event.t:9.3f}  {where}  {len(event.data):5d} B  {what}"


def _install_stop_handlers(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Ctrl+C and SIGTERM end the run normally, so the summary is still printed."""
    for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
        if sig is None:
            continue
        # Not available on Windows or outside the main thread: there Ctrl+C cancels the main task,
        # which _run also treats as "stop".
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)


async def _report_periodically(console: Console, proxy: NetemProxy, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        _print_stats(console, proxy, f"[{proxy.elapsed:8.1f} s]")


async def _run(args: argparse.Namespace, console: Console) -> int:
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    up, down = _config(args, Direction.UP), _config(args, Direction.DOWN)

    def show(event: DatagramEvent) -> None:
        console.print(_event_line(event))

    try:
        proxy = await start_proxy(
            args.listen,
            args.server,
            up,
            down,
            seed,
            args.capture,
            max_clients=args.max_clients,
            idle_timeout=args.idle_timeout,
            on_datagram=show if args.verbose else None,
        )
    except (OSError, ValueError) as exc:
        return _fail(_("cannot start: {error}").format(error=exc), 1)
    stop = asyncio.Event()
    # Before the banner: scripts wait for "listening on", then may send SIGTERM straight away.
    _install_stop_handlers(asyncio.get_running_loop(), stop)
    console.print(
        f"[bold green]{PROG}[/] listening on [bold]{escape(format_address(proxy.address))}[/]"
        f" → server {escape(format_address(proxy.server))}  (seed {seed})"
    )
    for direction, cfg in ((Direction.UP, up), (Direction.DOWN, down)):
        console.print(f"  {direction:<4} ({_ARROWS[direction]}): {_describe_config(cfg)}")

    reporter = None
    if args.stats_interval is not None:
        reporter = asyncio.create_task(_report_periodically(console, proxy, args.stats_interval))
    try:
        await asyncio.wait_for(stop.wait(), args.duration)
    except (TimeoutError, asyncio.CancelledError):
        pass  # --duration is up, or Ctrl+C where signal handlers are unavailable
    finally:
        if reporter is not None:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
        await proxy.close()
    console.print(f"[bold]{PROG}[/] stopped after {proxy.elapsed:.1f} s")
    _print_stats(console, proxy, "summary")
    return 0


def _fail(message: str, status: int) -> int:
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        _("{prog}: error: {message}").format(prog=PROG, message=escape(message)), markup=True
    )
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point of `labchat-netem`: exit status 0 ok, 1 run-time failure, 2 bad usage."""
    choose_language(PROG, sys.argv[1:] if argv is None else argv)  # argparse's words speak it too
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as exc:
        return _fail(str(exc), 2)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    console = Console(highlight=False, soft_wrap=True)
    try:
        return asyncio.run(_run(args, console))
    except KeyboardInterrupt:  # only where signal handlers are unavailable (Windows)
        return 130


if __name__ == "__main__":
    sys.exit(main())
