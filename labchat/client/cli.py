"""`labchat <server-ip> <server-port> <client-port>`: the full-screen app, or line mode with --plain.

Every mistake is one line on stderr and a non-zero exit; nothing here prints a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import sys
from pathlib import Path

from .. import __version__, signal_handlers
from ..i18n import _, add_lang_argument, choose_language, name_rule
from ..protocol.errors import LocalProtocolError
from ..protocol.messages import is_valid_name
from .core import ChatClient, ClientError, check_seat, parse_host_port, resolve, start_rooms
from .known_servers import KnownServers, default_known_servers_path
from .paths import ignore_list_path

PASSWORD_ENV = "LABCHAT_PASSWORD"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(2, _("labchat: {message} (see --help)").format(message=message) + "\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="labchat", description=_("Chat with everyone on the LAN through a labchat server.")
    )
    # Optional only for --discover, which takes at most an address and a port; main() checks.
    p.add_argument("server_ip", nargs="?", help=_("the server's address"))
    p.add_argument("server_port", nargs="?", type=int, help=_("the server's UDP port (usually 8080)"))
    p.add_argument(
        "client_port",
        nargs="?",
        type=int,
        help=_("local UDP port to use (labs open 5000-5010; 0 = any free)"),
    )
    p.add_argument(
        "--discover",
        action="store_true",
        help=_("list the labchat servers on this network (or ask only SERVER_IP [SERVER_PORT]) and exit"),
    )
    p.add_argument("--user", "-u", metavar="NAME", help=_("user name ({rule})").format(rule=name_rule()))
    p.add_argument(
        "--plain", action="store_true", help=_("line mode: stdin lines in, one line per event out")
    )
    p.add_argument("--json", action="store_true", help=_("line mode with one JSON object per event"))
    p.add_argument(
        "--room",
        action="append",
        default=[],
        metavar="ROOM",
        help=_("join ROOM at start (repeatable; a leading '#' is fine); the last one is where lines go"),
    )
    p.add_argument(
        "--seat",
        metavar="LABEL",
        help=_("where you sit, shown to the teachers (at most 40 bytes; default: this machine's host name)"),
    )
    p.add_argument(
        "--downloads",
        type=Path,
        default=None,
        metavar="DIR",
        help=_(
            "save accepted files in DIR (default: $LABCHAT_DOWNLOADS, else your Downloads folder/labchat)"
        ),
    )
    p.add_argument(
        "--no-bell", action="store_true", help=_("do not ring the terminal bell on mentions")
    )
    p.add_argument(
        "--no-notify",
        action="store_true",
        help=_(
            "no desktop notifications (mentions and private messages while the terminal is not focused)"
        ),
    )
    p.add_argument(
        "--fallback",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help=_(
            "another relay of the same server, tried when the server stops answering "
            "(repeatable, tried in order; the server may name more)"
        ),
    )
    p.add_argument(
        "--accept-new-server-key",
        action="store_true",
        help=_("trust the server's key even if it changed since last time (after checking it!)"),
    )
    p.add_argument(
        "--known-servers",
        type=Path,
        default=None,
        help=_("pinned server keys file (default {path})").format(path=default_known_servers_path()),
    )
    add_lang_argument(p)
    p.add_argument(
        "--version", action="version", version=f"labchat {__version__}",
        help=_("show program's version number and exit"),
    )  # fmt: skip
    return p


def _read_password(user: str) -> str | None:
    env = os.environ.get(PASSWORD_ENV)
    if env is not None:
        return env
    if sys.stdin.isatty():
        try:
            return getpass.getpass(_("Password for {user}: ").format(user=user))
        except (EOFError, KeyboardInterrupt):
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    choose_language("labchat", argv)  # first: the help and every error below speak it
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.discover:
        return _discover(args)
    missing = [n for n in ("server_ip", "server_port", "client_port") if getattr(args, n) is None]
    if missing:
        parser.error(_("the following arguments are required: {names}").format(names=", ".join(missing)))
    plain = args.plain or args.json
    try:
        resolve(args.server_ip, args.server_port)
        args.fallback = [parse_host_port(text) for text in args.fallback]
        for host, port in args.fallback:
            resolve(host, port)  # a typo fails now, in one line, not when the server goes away
        if not 0 <= args.client_port < 65536:
            raise ClientError(
                _("invalid client port {port}: use 0-65535 (0 picks a free one)").format(
                    port=args.client_port
                )
            )
    except ClientError as exc:
        print(f"labchat: {exc}", file=sys.stderr)
        return 2
    if args.user is not None and not is_valid_name(args.user):
        print(
            _("labchat: invalid user name {name!r}: {rule}").format(name=args.user, rule=name_rule()),
            file=sys.stderr,
        )
        return 2
    try:
        # --room as the wire spells it ('#CS101' is cs101), for line mode and the app alike.
        args.room = list(start_rooms(tuple(args.room)))
        if args.seat is not None:
            args.seat = check_seat(args.seat)  # None: the host name (ChatClient's default)
    except LocalProtocolError as exc:
        print(f"labchat: {exc}", file=sys.stderr)
        return 2
    known = KnownServers(args.known_servers or default_known_servers_path())
    if args.accept_new_server_key:
        known.forget(args.server_ip, args.server_port)
    if not plain:
        from ..tui.app import run_app  # imported here: line mode must not pay for Textual

        return run_app(args, known)
    if args.user is None:
        print(_("labchat: --plain needs --user NAME"), file=sys.stderr)
        return 2
    password = _read_password(args.user)
    if password is None:
        print(
            _("labchat: no password: set {env} or run on a terminal").format(env=PASSWORD_ENV),
            file=sys.stderr,
        )
        return 2
    for stream in (sys.stdin, sys.stdout):
        # A character the terminal or pipe's encoding cannot carry (an emoji on a Windows cp1252
        # pipe) becomes "?" rather than a traceback or the end of input.
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
    try:
        return asyncio.run(_plain(args, password, known))
    except KeyboardInterrupt:
        return 130


def _discover(args: argparse.Namespace) -> int:
    """`labchat --discover [HOST [PORT]]`: print the servers that answer, one per line (or JSON)."""
    import json

    from .discover import BROADCAST, discover, found_line, found_record

    host = args.server_ip or BROADCAST
    port = 8080 if args.server_port is None else args.server_port
    if not 0 < port < 65536:
        print(_("labchat: invalid server port {port}: use 1-65535").format(port=port), file=sys.stderr)
        return 2
    try:
        found = asyncio.run(discover(host, port))
    except OSError as exc:
        print(
            _("labchat: cannot probe {host}:{port}: {reason}").format(
                host=host, port=port, reason=exc.strerror or exc
            ),
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130
    for server in found:
        print(json.dumps(found_record(server)) if args.json else found_line(server))
    if not found:
        print(_("labchat: no labchat server answered on port {port}").format(port=port), file=sys.stderr)
        return 1
    return 0


async def _plain(args: argparse.Namespace, password: str, known: KnownServers) -> int:
    from .plain import run_plain

    try:
        client = ChatClient(
            args.server_ip,
            args.server_port,
            args.user,
            password,
            local_port=args.client_port,
            known_servers=known,
            ignore_path=ignore_list_path(),
            rooms=tuple(args.room),
            seat=args.seat,
            downloads_dir=args.downloads,
            fallbacks=tuple(args.fallback),
        )
        await client.start()
    except (ClientError, LocalProtocolError) as exc:
        print(f"labchat: {exc}", file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()
    interrupted = 0

    def on_signal(_signum: int) -> None:
        nonlocal interrupted
        interrupted += 1
        if interrupted == 1:
            client.quit()  # leave politely: the room sees us go at once
        else:
            client.conn.close("interrupted")
            client._pump()

    # Ctrl+C, a `kill`, the terminal closing (no SIGHUP on Windows), Ctrl+Break on Windows.
    restore = signal_handlers.install(
        loop, signal_handlers.signals_named("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK"), on_signal
    )
    try:
        code = await run_plain(client, as_json=args.json)
    finally:
        restore()
        client._shutdown()
    if interrupted and not client.logged_in:
        return 130  # stopped by the user before the login finished: neither success nor a failure
    return code
