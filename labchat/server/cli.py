"""`labchat-server <ip> -p <port>`: run the relay, logging to the terminal with Rich.

The only module of the server that knows about the terminal: it installs the Rich log handler, parses
flags, opens the store and key, and turns every failure into one line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import socket
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.logging import RichHandler

from .. import __version__, signal_handlers
from ..compile import status as compile_status
from ..i18n import _, add_lang_argument, choose_language, ngettext
from ..protocol import messages as m
from ..protocol.channel import ServerChannel, fingerprint
from ..startup_gc import freeze_startup_objects
from .accounts import LoginPolicy
from .backplane import ClusterBackplane
from .files import FilePolicy
from .keys import KeyFileError, load_or_create_server_key, public_key_of
from .relay import Relay, RelayConfig
from .retention import DAY_S, MIB, RetentionPolicy
from .store import Store, StoreError, default_db_path
from .tickets import TicketBook, derive_ticket_key, load_or_create_ticket_key
from .transport import RelayServer, ServerError, serve

if TYPE_CHECKING:
    from .cluster.bridge import ClusterBridge

log = logging.getLogger("labchat.server")

#: How long a relay waits at start for a NATS server of its cluster to answer before giving up in one
#: line (once running, it rides out NATS outages by itself: protocol.md 22.6).
CLUSTER_CONNECT_S = 10.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as every labchat command does
        self.exit(2, _("labchat-server: {message} (see --help)").format(message=message) + "\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="labchat-server",
        description=_("Relay server for labchat: chat rooms for everyone on the LAN."),
    )
    p.add_argument(
        "ip", help=_("address to listen on (0.0.0.0 for every interface, 127.0.0.1 for this machine)")
    )
    p.add_argument("-p", "--port", type=int, default=8080, help=_("UDP port (default 8080)"))
    p.add_argument(
        "--db",
        type=Path,
        default=None,
        help=_("SQLite database (default {path})").format(path=default_db_path()),
    )
    p.add_argument(
        "--registration",
        choices=("open", "closed"),
        default="open",
        help=_("open: unknown names register on first login (default); closed: existing accounts only"),
    )
    p.add_argument(
        "--history",
        type=int,
        default=50,
        metavar="N",
        help=_("messages shown to a newcomer (default 50)"),
    )
    p.add_argument(
        "--client-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help=_("seconds of silence before a client is dropped (default 30)"),
    )
    p.add_argument(
        "--rate",
        type=float,
        default=100.0,
        metavar="N",
        help=_("messages per second per user before the server holds them back (default 100)"),
    )
    p.add_argument(
        "--burst",
        type=int,
        default=500,
        metavar="N",
        help=_("burst allowed above --rate (default 500)"),
    )
    p.add_argument(
        "--history-days",
        type=float,
        default=365.0,
        metavar="DAYS",
        help=_("delete room messages older than this (default 365; 0: keep them forever)"),
    )
    p.add_argument(
        "--history-max-mb",
        type=float,
        default=1024.0,
        metavar="MB",
        help=_("delete the oldest messages while the database is larger (default 1024; 0: no cap)"),
    )
    p.add_argument(
        "--max-file-mb",
        type=float,
        default=100.0,
        metavar="MB",
        help=_("the largest file a user may offer (default 100)"),
    )
    p.add_argument(
        "--quota-mb",
        type=float,
        default=500.0,
        metavar="MB",
        help=_("what one user's kept files may take on the server in all (default 500)"),
    )
    p.add_argument(
        "--file-retention-days",
        type=float,
        default=7.0,
        metavar="DAYS",
        help=_(
            "delete offered files this long after they were sent (default 7); "
            "unfinished uploads go after 24 hours"
        ),
    )
    p.add_argument(
        "--files-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=_("where offered files are kept (default: files/ beside the database)"),
    )
    p.add_argument(
        "--max-registrations-per-hour",
        type=int,
        default=60,
        metavar="N",
        help=_("new accounts one address may register per hour (default 60, a class; 0: no limit)"),
    )
    p.add_argument(
        "--login-workers",
        type=int,
        default=2,
        metavar="N",
        help=_("password checks (scrypt) run at once; more logins queue and hear their place (default 2)"),
    )
    p.add_argument(
        "--advertise",
        default=None,
        metavar="HOST:PORT",
        help=_(
            "the address clients should use for this relay, when it is not the one it is bound to "
            "(a wildcard such as 0.0.0.0, or an address translation): the other relays tell their "
            "clients to move here by it"
        ),
    )
    p.add_argument(
        "--class-password",
        action="store_true",
        help=_(
            "also admit guests without accounts who know a shared class password (taken from "
            "LABCHAT_CLASS_PASSWORD, else asked on the terminal); LOGIN then no longer registers accounts"
        ),
    )
    p.add_argument("--name", default="labchat", help=_("server name shown to clients"))
    p.add_argument(
        "--no-discovery",
        action="store_true",
        help=_("do not answer `labchat --discover` (by default the server tells the LAN its name and key)"),
    )
    p.add_argument(
        "--relays",
        type=int,
        default=None,
        metavar="N",
        help=_(
            "with --cluster: run N relay processes sharing the UDP port (SO_REUSEPORT), one per core, "
            "restarted if they die"
        ),
    )
    p.add_argument(
        "--reuse-port",
        action="store_true",
        help=_("with --cluster: share the UDP port with other relays of the cluster on this machine"),
    )
    p.add_argument(
        "--cluster",
        default=None,
        metavar="URL[,URL...]",
        help=_(
            "be one relay of a cluster: rooms, their order and their history go through these NATS "
            "JetStream servers (nats://HOST:PORT, comma-separated); the database is then a local copy"
        ),
    )
    p.add_argument(
        "--key",
        type=Path,
        default=None,
        metavar="PATH",
        help=_(
            "the server key file (default: beside the database); every relay of a cluster uses a copy "
            "of the same one, so clients trust and resume on any of them"
        ),
    )
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    p.add_argument(
        "--quiet", action="store_true", help=_("log only warnings and errors (no per-message lines)")
    )
    add_lang_argument(p)
    p.add_argument(
        "--version", action="version", version=f"labchat {__version__}",
        help=_("show program's version number and exit"),
    )  # fmt: skip
    return p


def addresses_for_clients(bound_host: str) -> list[str]:
    """What to tell users to type: a server on every interface (0.0.0.0 or ::) is reached at this
    machine's own addresses, not at the wildcard. Loopback only if there is nothing else."""
    if bound_host not in ("0.0.0.0", "::"):
        return [bound_host]
    family = socket.AF_INET6 if bound_host == "::" else socket.AF_INET
    found: set[str] = set()
    with contextlib.suppress(OSError, UnicodeError):
        for info in socket.getaddrinfo(socket.gethostname(), None, family, socket.SOCK_DGRAM):
            found.add(str(info[4][0]))
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as probe:
        # Connecting a UDP socket sends nothing; it only asks the kernel which address it would use.
        probe.connect(("2001:db8::1" if family == socket.AF_INET6 else "192.0.2.1", 9))
        found.add(str(probe.getsockname()[0]))
    local = ("127.", "::1", "fe80", "0.0.0.0")
    usable = sorted(a for a in found if not a.startswith(local) and a != "::")
    return usable or (["::1"] if family == socket.AF_INET6 else ["127.0.0.1"])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    choose_language("labchat-server", argv)  # first: the help, errors, banner and log speak it
    args = build_parser().parse_args(argv)
    console = Console(stderr=False, highlight=False)
    level = logging.WARNING if args.quiet else getattr(logging, args.log_level.upper())
    handler = RichHandler(
        console=console,
        show_path=False,
        markup=True,
        rich_tracebacks=False,
        log_time_format="%H:%M:%S",
    )
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    if not 0 <= args.port < 65536:
        print(
            _("labchat-server: invalid port {port}: use 1-65535 (or 0 for any free port)").format(
                port=args.port
            ),
            file=sys.stderr,
        )
        return 2
    if args.history < 0 or args.rate <= 0 or args.burst < 1 or args.client_timeout <= 0:
        print(
            _("labchat-server: --history, --rate, --burst and --client-timeout must be positive"),
            file=sys.stderr,
        )
        return 2
    if not (0 <= args.history_days < 1e6 and 0 <= args.history_max_mb < 1e9):
        print(
            _("labchat-server: --history-days and --history-max-mb must be 0 (no limit) or more"),
            file=sys.stderr,
        )
        return 2
    if not (0 < args.max_file_mb < 1e7 and 0 < args.quota_mb < 1e9 and 0 < args.file_retention_days < 1e5):
        print(
            _("labchat-server: --max-file-mb, --quota-mb and --file-retention-days must be more than 0"),
            file=sys.stderr,
        )
        return 2
    advertise = None if args.advertise is None else m.parse_relay_address(args.advertise)
    if args.advertise is not None and advertise is None:
        print(
            _("labchat-server: invalid --advertise {text!r}: use HOST:PORT, e.g. 10.0.0.2:8080").format(
                text=args.advertise
            ),
            file=sys.stderr,
        )
        return 2
    if args.max_registrations_per_hour < 0 or not 1 <= args.login_workers <= 64:
        print(
            _("labchat-server: --max-registrations-per-hour must be 0 or more, --login-workers 1-64"),
            file=sys.stderr,
        )
        return 2
    cluster_urls: list[str] | None = None
    if args.cluster is not None:
        from .cluster.connection import parse_urls  # NATS is loaded only for a cluster

        try:
            cluster_urls = parse_urls(args.cluster)
        except ValueError as exc:
            print(_("labchat-server: --cluster: {reason}").format(reason=exc), file=sys.stderr)
            return 2
    if args.relays is not None or args.reuse_port:
        problem = _relays_problem(args)
        if problem is not None:
            print(f"labchat-server: {problem}", file=sys.stderr)
            return 2
    class_password = None
    if args.class_password:
        class_password = _class_password()
        if class_password is None:
            return 2
    if args.relays is not None:
        from .supervisor import run_relays

        if class_password is not None:  # asked once here, handed to every relay
            os.environ["LABCHAT_CLASS_PASSWORD"] = class_password
        return run_relays(argv, args.relays, args.ip, args.port, args.db, getattr(args, "key", None),
                          has_key_flag="key" in vars(args), files_dir=args.files_dir)
    db_path = args.db or default_db_path()
    try:
        store = Store(db_path)
        key = load_or_create_server_key(args.key or db_path.with_name(db_path.stem + ".key"))
        if cluster_urls is not None:
            # Every relay derives the same ticket key from the shared server key (docs/cluster.md).
            ticket_key = derive_ticket_key(key)
        else:
            # Beside the server key, as secret: tickets then survive a restart (docs/protocol.md 17.4).
            ticket_key = load_or_create_ticket_key(db_path.with_name(db_path.stem + ".ticket-key"))
    except (StoreError, KeyFileError) as exc:
        print(f"labchat-server: {exc}", file=sys.stderr)
        return 1
    for warning in store.warnings:
        log.warning("%s", warning, extra={"markup": False})
    config = RelayConfig(
        client_timeout_s=args.client_timeout,
        history_on_join=args.history,
        registration_open=args.registration == "open",
        server_name=args.name,
        rate_per_s=args.rate,
        rate_burst=args.burst,
        retention=RetentionPolicy(
            max_age_s=args.history_days * DAY_S or None,
            max_bytes=int(args.history_max_mb * MIB) or None,
        ),
        login=LoginPolicy(
            parallel_checks=args.login_workers,
            registrations_per_hour=args.max_registrations_per_hour,
        ),
        class_password=class_password,
        files=FilePolicy(
            max_file_bytes=int(args.max_file_mb * MIB),
            quota_bytes=int(args.quota_mb * MIB),
            retention_s=args.file_retention_days * DAY_S,
            directory=_files_dir(args.files_dir, db_path, clustered=args.cluster is not None),
        ),
        advertise=advertise,
    )
    channel = ServerChannel(key)
    channel.discovery_name = None if args.no_discovery else args.name
    tickets = TicketBook(ticket_key, channel.public_key, lifetime_s=config.ticket_lifetime_s)
    if cluster_urls is not None:
        # A cluster's relays announce failover (22.1) and number nothing themselves (backplane.py).
        config = replace(config, capabilities=config.capabilities | m.CAP_FAILOVER)
    backplane = ClusterBackplane() if cluster_urls is not None else None
    try:
        relay = Relay(store, channel, config, tickets, backplane)
    except sqlite3.Error as exc:  # the store's start-up probe missed the damage; still one line
        print(
            _("labchat-server: cannot read database {path}: {reason}").format(path=db_path, reason=exc),
            file=sys.stderr,
        )
        return 1
    except StoreError as exc:  # the rooms could not be read
        print(f"labchat-server: {exc}", file=sys.stderr)
        return 1
    if "STALE" in (build := compile_status()):
        logging.getLogger(__name__).warning("labchat build: %s", build)
    freeze_startup_objects()
    try:
        return asyncio.run(_run(args.ip, args.port, relay, db_path, fingerprint(public_key_of(key)), console,
                                reuse_port=args.reuse_port, cluster_urls=cluster_urls))
    except KeyboardInterrupt:
        return 0


def _relays_problem(args: argparse.Namespace) -> str | None:
    """Why --relays / --reuse-port cannot be used as given (one line), or None."""
    from .supervisor import MAX_RELAYS, reuse_port_problem

    flag = "--relays" if args.relays is not None else "--reuse-port"
    if not getattr(args, "cluster", None):
        return _(
            "{flag} needs --cluster: without it each process would be a separate server "
            "with its own users and history"
        ).format(flag=flag)
    if args.relays is not None and not 1 <= args.relays <= MAX_RELAYS:
        return _("--relays must be 1-{most}").format(most=MAX_RELAYS)
    problem = reuse_port_problem()
    if problem is not None:
        return _("{flag} cannot share the port: {reason}").format(flag=flag, reason=problem)
    return None


def _class_password() -> str | None:
    """`--class-password`'s value: LABCHAT_CLASS_PASSWORD, else asked (hidden) on the terminal; never
    a command-line argument, where `ps` would show it. None (after one line on stderr): neither works."""
    password = os.environ.get("LABCHAT_CLASS_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            print(
                _(
                    "labchat-server: --class-password needs LABCHAT_CLASS_PASSWORD set, "
                    "or a terminal to ask on"
                ),
                file=sys.stderr,
            )
            return None
        try:
            password = getpass.getpass(_("Class password: "))
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return None
    if not password:
        print(_("labchat-server: the class password cannot be empty"), file=sys.stderr)
        return None
    return password


async def _run(
    host: str, port: int, relay: Relay, db_path: Path, fp: str, console: Console, *, reuse_port: bool = False,
    cluster_urls: list[str] | None = None,
) -> int:
    try:
        server = await serve(host, port, relay, reuse_port=reuse_port)
    except ServerError as exc:
        print(f"labchat-server: {exc}", file=sys.stderr)
        relay.store.close()
        return 1
    bridge = None
    if cluster_urls is not None:
        bridge = await _join_cluster(server, cluster_urls)
        if bridge is None:
            await server.stop(grace_s=0)
            return 1
    bound_host, bound_port = server.address
    # The banner is printed even with --quiet: it is what the operator needs to tell the users.
    registration = _("open") if relay.config.registration_open else _("closed")
    if relay.config.class_password is not None:
        registration = _("by labchat-admin; guests with the class password")
    console.print(
        _("[bold]labchat server[/] listening on UDP [bold cyan]{address}[/]").format(
            address=f"{bound_host}:{bound_port}"
        ),
        soft_wrap=True,
    )
    retention = relay.config.retention
    if retention.max_age_s is None:
        days = _("forever")
    else:
        days = _("{days} days").format(days=f"{retention.max_age_s / DAY_S:g}")
    if retention.max_bytes is None:
        cap = _("no size cap")
    else:
        cap = _("at most {mb} MB").format(mb=f"{retention.max_bytes / MIB:g}")
    console.print(
        _("database {path} (registration {registration}; history kept {days}, {cap})").format(
            path=db_path, registration=registration, days=days, cap=cap
        ),
        soft_wrap=True,
        markup=False,
    )
    files = relay.config.files
    console.print(
        _("files kept {days} days in {path} (at most {mb} MB each, {quota} MB per user)").format(
            days=f"{files.retention_s / DAY_S:g}",
            path=relay.files.disk.location,
            mb=f"{files.max_file_bytes / MIB:g}",
            quota=f"{files.quota_bytes / MIB:g}",
        ),
        soft_wrap=True,
        markup=False,
    )
    console.print(_("server key fingerprint [bold]{fingerprint}[/]").format(fingerprint=fp), soft_wrap=True)
    for host in addresses_for_clients(bound_host):
        console.print(
            _("clients connect with: {command}").format(command=f"labchat {host} {bound_port} 5000"),
            soft_wrap=True,
            markup=False,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Ctrl+C, a `kill`, and Ctrl+Break on Windows (whose loop has no add_signal_handler: see there).
    restore = signal_handlers.install(
        loop, signal_handlers.signals_named("SIGINT", "SIGTERM", "SIGBREAK"), lambda _sig: stop.set()
    )
    await stop.wait()
    restore()
    if bridge is not None:
        await bridge.close()
    console.print(
        ngettext(
            "shutting down: telling {count} client", "shutting down: telling {count} clients", relay.online()
        ).format(count=relay.online())
    )
    await server.stop()
    if bridge is not None:
        await bridge.conn.close()
    return 0


async def _join_cluster(server: RelayServer, urls: list[str]) -> ClusterBridge | None:
    """Connect to NATS and start the bridge; None (after one line on stderr) when NATS cannot be
    reached at start. Once running, the relay rides out NATS outages by itself (protocol.md 22.6)."""
    from .cluster.bridge import ClusterBridge
    from .cluster.connection import ClusterConnection
    from .cluster.directory import RelayDirectory
    from .cluster.people import ClusterPeople

    try:
        # Bounded: NATS's client would otherwise go on trying for ever, saying nothing.
        conn = await asyncio.wait_for(ClusterConnection.connect(urls), CLUSTER_CONNECT_S)
    except Exception as exc:  # nats-py raises its own errors, OSError and timeouts here
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            reason = _("no NATS server answered in {seconds} s").format(seconds=f"{CLUSTER_CONNECT_S:g}")
        print(
            _("labchat-server: cannot reach the cluster at {urls}: {reason}").format(
                urls=",".join(urls), reason=reason
            ),
            file=sys.stderr,
        )
        return None
    bridge = await ClusterBridge.start(server, conn)
    try:
        # People (presence, sessions, accounts, private messages, moderation) and the relays'
        # directory ride on the same connection; they leave the cluster before the bridge stops.
        people = await ClusterPeople.start(
            conn, server.relay, flush=server.protocol.schedule_flush, clock=server.protocol.clock
        )
        bridge.on_close(people.close)
        directory = await RelayDirectory.attach(conn, server)
        bridge.on_close(directory.stop)
    except Exception as exc:  # the cluster answered the connection but not its buckets in time
        reason = str(exc) or type(exc).__name__
        print(_("labchat-server: the cluster at {urls} is not ready: {reason}").format(
            urls=",".join(urls), reason=reason), file=sys.stderr)  # fmt: skip
        await bridge.close()
        await conn.close()
        return None
    log.info(_("one relay of the cluster at %s"), ",".join(urls))
    return bridge


def _files_dir(given: Path | None, db_path: Path, *, clustered: bool) -> Path | None:
    """Where offered files go. A single server: `--files-dir`, else `files` beside its database. A
    relay of a cluster without `--files-dir`: a directory named after its own database, since each
    relay numbers its files itself and two relays whose databases share a folder must not share one."""
    if given is not None or not clustered:
        return given
    return db_path.with_name(db_path.stem + "-files")

