"""`labchat-web <server-ip> <server-port>`: the full-screen app in a browser, one client per tab.

For lab PCs where students have no terminal. textual-serve does the bridging: it serves a page with
xterm.js, and for each browser tab that connects it starts one app process (tui/web_tab.py) running
Textual's web driver, and relays keys and screen updates over a websocket. Each tab is therefore a
client of its own, with its own UDP socket (an ephemeral port) on this machine, exactly as if the
student had typed `labchat` here. The server address is fixed by our command line; the person at
the browser only logs in.

What we add to textual-serve's `Server`:
- The page's websocket address comes from the address the browser used (or `--public-url`), not
  from `--host`: with `--host 0.0.0.0` textual-serve would tell every browser to connect to
  ws://0.0.0.0:8000, which only works on this machine.
- `--port 0` works (any free port, printed in the banner), and a port in use is one line, exit 1.
- Our banner and one log line per tab opened and closed; Ctrl+C or SIGTERM closes every tab, whose
  app then leaves the room politely (textual-serve's "quit"), so classmates see "X left" at once.
- Each tab's app is given the browser's address as its seat (protocol 20.2): every tab runs on this
  machine, whose name would otherwise be every student's seat, and a teacher walks to the browser.

Security: this serves the login page over plain HTTP. It binds to 127.0.0.1 unless told otherwise;
for a lab, put it behind the lab's own reverse proxy with TLS, or passwords cross the LAN in clear
between the browser and here (from here to the labchat server they are protected as always).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import html
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server

from .. import __version__, signal_handlers
from ..client.core import ClientError, parse_host_port, resolve
from ..client.known_servers import default_known_servers_path
from ..i18n import _, add_lang_argument, choose_language, current_language
from ..protocol.classroom import seat_label

DEFAULT_HTTP_PORT = 8000
DEFAULT_HOST = "127.0.0.1"
#: Tabs served at once by default: a class, with room to spare. Each is a process of about 60 MB.
DEFAULT_MAX_TABS = 60
#: How long a stop waits for open tabs' apps to say goodbye before closing the rest.
SHUTDOWN_GRACE_S = 5.0


#: textual-serve's page links Roboto Mono from Google Fonts; we serve its own copy instead.
_ONLINE_FONT_LINK = re.compile(r"<link[^>]*fonts\.googleapis\.com[^>]*>", re.IGNORECASE)
LOCAL_FONT_STYLE = """<style>
      @font-face {
        font-family: "Roboto Mono";
        src: url("{static}fonts/RobotoMono-VariableFont_wght.ttf") format("truetype");
        font-weight: 100 700;
      }
    </style>"""


#: The page for a browser that comes when every tab is taken ({lang}, {title}, {body} filled in).
FULL_PAGE = """<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title></head>
<body style="background:#0c181f;color:#e0e0e0;font-family:monospace;padding:4em">
{body}</body></html>
"""


def full_page(count: int) -> str:
    """The "try later" page in the active language."""
    body = "<p>{}</p>\n<p>{}</p>".format(
        html.escape(
            _("labchat is full: {count} browser tabs are open, the most this machine serves at once.").format(
                count=count
            )
        ),
        html.escape(_("Try again in a minute, or ask your teacher.")),
    )
    return (
        FULL_PAGE.replace("{lang}", current_language())
        .replace("{title}", html.escape(_("labchat: full")))
        .replace("{body}", body)
    )


class WebError(Exception):
    """A problem the operator can fix (port in use, address not here): one line, exit 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, _("labchat-web: {message} (see --help)").format(message=message) + "\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="labchat-web",
        description=_(
            "Serve the labchat app to web browsers: every browser tab that opens the page is one "
            "labchat client, running on this machine, logged in to the server given here."
        ),
        epilog=_(
            "Security: the page is plain HTTP (no TLS). By default only this machine can open it. "
            "--host 0.0.0.0 serves the login page to the whole LAN, and names and passwords then "
            "cross it in clear between the browsers and this machine: for a lab, keep the default "
            "host and put labchat-web behind the lab's own reverse proxy with TLS (see --public-url)."
        ),
    )
    p.add_argument("server_ip", help=_("the labchat server's address"))
    p.add_argument("server_port", type=int, help=_("the labchat server's UDP port (usually 8080)"))
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_HTTP_PORT,
        help=_("TCP port for the web page (default {port}; 0 picks a free one)").format(
            port=DEFAULT_HTTP_PORT
        ),
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=_(
            "address to serve the page on (default {host}: this machine only; 0.0.0.0 "
            "serves the login page to the LAN without TLS: put it behind a reverse proxy instead)"
        ).format(host=DEFAULT_HOST),
    )
    p.add_argument(
        "--public-url",
        metavar="URL",
        help=_(
            "the address browsers reach the page at, when a reverse proxy stands in front "
            "(e.g. https://lab.example/chat); default: the address each browser used"
        ),
    )
    p.add_argument(
        "--max-tabs",
        type=int,
        default=DEFAULT_MAX_TABS,
        metavar="N",
        help=_(
            "browser tabs served at once, each a labchat process of about 60 MB "
            "(default {count}; 0: no limit); the page tells who comes next to try later"
        ).format(count=DEFAULT_MAX_TABS),
    )
    p.add_argument(
        "--known-servers",
        type=Path,
        default=None,
        help=_("pinned server keys file shared by every tab (default {path})").format(
            path=default_known_servers_path()
        ),
    )
    p.add_argument(
        "--fallback",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help=_(
            "another relay of the same server, tried when the server stops answering "
            "(repeatable, tried in order; passed to every tab)"
        ),
    )
    add_lang_argument(p)
    p.add_argument(
        "--version", action="version", version=f"labchat-web {__version__}",
        help=_("show program's version number and exit"),
    )  # fmt: skip
    return p


def tab_command(
    server_ip: str,
    server_port: int,
    known_servers: Path,
    lang: str | None = None,
    fallbacks: tuple[tuple[str, int], ...] = (),
) -> str:
    """The shell command textual-serve runs for each browser tab (it starts it through a shell).
    `lang`: the language of `labchat-web --lang`, passed on to every tab (None: the tab's locale).
    `fallbacks`: `--fallback` addresses, passed on as `--fallback HOST:PORT` after the rest."""
    argv = [sys.executable, "-m", "labchat.tui.web_tab", server_ip, str(server_port), str(known_servers)]
    if lang is not None:
        argv.append(lang)
    for host, port in fallbacks:
        argv += ["--fallback", f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    if sys.platform == "win32":
        return _shell_words(argv)
    return "exec " + _shell_words(argv)  # the shell becomes the app: no idle shell per tab


def _shell_words(argv: list[str]) -> str:
    """`argv` quoted for the shell textual-serve starts each tab through."""
    return subprocess.list2cmdline(argv) if sys.platform == "win32" else shlex.join(argv)


#: The browser's address for the tab whose app is being started: `WebServer.handle_websocket` sets it
#: in its own task, and textual-serve reads `command` in that same task, so tabs opened at once never
#: see each other's.
_TAB_ADDRESS: contextvars.ContextVar[str | None] = contextvars.ContextVar("labchat_tab_address", default=None)


def _check_public_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ClientError(_("invalid --public-url {url!r}: use http(s)://host[:port][/path]").format(url=url))
    return url.rstrip("/")


class WebServer(Server):
    """textual-serve's server with the changes listed in the module docstring."""

    def __init__(
        self,
        command: str,
        *,
        host: str,
        port: int,
        server_label: str,
        public_url: str | None = None,
        max_tabs: int = DEFAULT_MAX_TABS,
    ) -> None:
        super().__init__(command, host=host, port=port, title=f"labchat · {server_label}")
        self.server_label = server_label
        #: None: every page points back at the address its browser used.
        self.fixed_public_url = public_url
        self.bound_port = port
        #: 0: no limit.
        self.max_tabs = max_tabs
        self._tabs: set[asyncio.Task[Any]] = set()

    @property
    def command(self) -> str:
        """What textual-serve runs for a tab: the tab command, with `--seat` the browser's address
        when a tab is being opened (see `_TAB_ADDRESS`)."""
        address = _TAB_ADDRESS.get()
        if not address:
            return self._command
        return f"{self._command} {_shell_words(['--seat', seat_label(address)])}"

    @command.setter
    def command(self, value: str) -> None:  # textual-serve's __init__ sets it
        self._command = value

    @property
    def full(self) -> bool:
        """As many tabs are open as `--max-tabs` allows: a new one is turned away with a reason."""
        return 0 < self.max_tabs <= len(self._tabs)

    def _full_response(self, request: web.Request) -> web.HTTPServiceUnavailable:
        """The "try later" page (a 503), for the page and for a websocket that comes anyway."""
        _log(
            _("refused a tab from {address}: {count} open, the most allowed (--max-tabs)").format(
                address=request.remote, count=len(self._tabs)
            )
        )
        return web.HTTPServiceUnavailable(
            content_type="text/html",
            text=full_page(len(self._tabs)),
            headers={"Retry-After": "60"},
        )

    def _base_url(self, request: web.Request) -> str:
        if self.fixed_public_url is not None:
            return self.fixed_public_url
        return f"{request.scheme}://{request.host}"

    async def handle_index(self, request: web.Request) -> web.Response:
        """The page, with its websocket and static addresses built from where the browser is.

        textual-serve's page also asks Google Fonts for Roboto Mono. A lab is often offline or
        firewalled, and a stylesheet that never answers holds the page's start (its `onload`), so
        that link becomes an @font-face on the copy of the font textual-serve ships.
        """
        if self.full:
            raise self._full_response(request)
        base = self._base_url(request)
        router = request.app.router
        static_url = base + str(router["static"].url_for(filename="/")).rstrip("/") + "/"
        context = {
            "font_size": _font_size(request.query.get("fontsize", "16")),
            "app_websocket_url": "ws" + base.removeprefix("http") + str(router["websocket"].url_for()),
            "config": {"static": {"url": static_url}},
            "application": {"name": self.title},
        }
        response = aiohttp_jinja2.render_template("app_index.html", request, context)
        local_font = LOCAL_FONT_STYLE.replace("{static}", static_url)
        response.text = _ONLINE_FONT_LINK.sub(lambda _match: local_font, response.text or "")
        return response

    def _same_origin(self, request: web.Request) -> bool:
        """Whether the websocket is opened by our own page (or a client that sends no Origin).

        Browsers let any web site open a websocket to any address, with the site's Origin header:
        without this check a page the student visits could start labchat clients here and drive them.
        """
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser, or an old one: nothing is lent to another site
        allowed = {f"{request.scheme}://{request.host}".lower()}
        if self.fixed_public_url is not None:
            parts = urlsplit(self.fixed_public_url)
            allowed.add(f"{parts.scheme}://{parts.netloc}".lower())
        return origin.lower() in allowed

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One tab: logged, and tracked so that a stop can close it. Other sites' pages are refused."""
        if not self._same_origin(request):
            _log(
                _("refused a tab from {address}: opened by another site ({origin})").format(
                    address=request.remote, origin=request.headers["Origin"]
                )
            )
            raise web.HTTPForbidden(text=_("labchat-web: this page belongs to another site") + "\n")
        if self.full:
            raise self._full_response(request)
        task = asyncio.current_task()
        assert task is not None
        self._tabs.add(task)
        _log(_("tab opened from {address}").format(address=request.remote))
        token = _TAB_ADDRESS.set(request.remote)
        try:
            return await super().handle_websocket(request)
        finally:
            _TAB_ADDRESS.reset(token)
            self._tabs.discard(task)
            _log(_("tab closed from {address}").format(address=request.remote))

    async def on_startup(self, app: web.Application) -> None:
        """No banner here (the port is not bound yet); `run` prints ours."""

    async def on_shutdown(self, app: web.Application) -> None:
        """Close every tab: textual-serve then tells its app to quit, which leaves the room."""
        for task in list(self._tabs):
            task.cancel()
        if self._tabs:
            await asyncio.wait(list(self._tabs), timeout=SHUTDOWN_GRACE_S)

    async def run(self) -> None:
        """Serve until SIGINT/SIGTERM. Raises WebError if the address cannot be bound."""
        runner = web.AppRunner(await self._make_app(), handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, shutdown_timeout=SHUTDOWN_GRACE_S)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise WebError(
                _("cannot serve on {address}: {reason}").format(
                    address=f"{self.host}:{self.port}", reason=reason
                )
            ) from None
        self.bound_port = int(runner.addresses[0][1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.host in ("0.0.0.0", "::", ""):
            host = _("<this machine's address>")
        print(
            _(
                "labchat-web: serving labchat for {server} on {url} "
                "(one client per browser tab; Ctrl+C stops)"
            ).format(
                server=self.server_label, url=f"http://{host}:{self.bound_port}/"
            ),
            flush=True,
        )
        if self.host not in ("127.0.0.1", "::1", "localhost"):
            print(
                _(
                    "labchat-web: warning: the page is plain HTTP on the network: "
                    "passwords cross it in clear; put a TLS reverse proxy in front"
                ),
                flush=True,
            )
        stop = asyncio.Event()
        restore = signal_handlers.install(
            asyncio.get_running_loop(),
            signal_handlers.signals_named("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK"),
            lambda _signum: stop.set(),
        )
        try:
            await stop.wait()
        finally:
            restore()
            _log(_("stopping: closing the open tabs"))
            await runner.cleanup()


def _font_size(text: str) -> int:
    try:
        return max(6, min(48, int(text)))
    except ValueError:
        return 16


def _log(line: str) -> None:
    print(f"labchat-web: {line}", flush=True)


def _check_host(host: str, port: int) -> None:
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ClientError(_("invalid --host {host!r}: {reason}").format(host=host, reason=exc)) from None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    lang = choose_language("labchat-web", argv)
    args = build_parser().parse_args(argv)
    try:
        resolve(args.server_ip, args.server_port)
        args.fallback = [parse_host_port(text) for text in args.fallback]
        for fallback_host, fallback_port in args.fallback:
            resolve(fallback_host, fallback_port)
        if not 0 <= args.port < 65536:
            raise ClientError(
                _("invalid --port {port}: use 0-65535 (0 picks a free one)").format(port=args.port)
            )
        _check_host(args.host, args.port)
        public_url = None if args.public_url is None else _check_public_url(args.public_url)
        if args.max_tabs < 0:
            raise ClientError(
                _("invalid --max-tabs {count}: use 1 or more (0: no limit)").format(count=args.max_tabs)
            )
    except ClientError as exc:
        print(f"labchat-web: {exc}", file=sys.stderr)
        return 2
    known = (args.known_servers or default_known_servers_path()).resolve()
    host = f"[{args.server_ip}]" if ":" in args.server_ip else args.server_ip
    label = f"{host}:{args.server_port}"
    server = WebServer(
        # Each tab speaks our language and knows the server's other relays.
        tab_command(args.server_ip, args.server_port, known, lang, tuple(args.fallback)),
        host=args.host,
        port=args.port,
        server_label=label,
        public_url=public_url,
        max_tabs=args.max_tabs,
    )
    try:
        asyncio.run(server.run())
    except WebError as exc:
        print(f"labchat-web: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


__all__ = ["WebServer", "build_parser", "main", "tab_command"]


if __name__ == "__main__":
    sys.exit(main())
