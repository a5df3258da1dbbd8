"""One browser tab's client: the full-screen app that `labchat-web` starts for every tab it serves.

`labchat-web` (tui/web.py) runs `python -m labchat.tui.web_tab SERVER_IP SERVER_PORT KNOWN_SERVERS [LANG]
[--fallback HOST:PORT ...] [--seat LABEL]`
once per browser connection, with Textual's web driver chosen through the environment, so each tab
is its own process with its own UDP socket, as if the student had typed `labchat` in a terminal.

What differs from `labchat` in a terminal, and why:
- The server is the one on labchat-web's command line: the login screen offers no "Find servers".
- The client port is 0 (any free one) and the login screen does not ask for it: the socket lives on
  the machine that runs `labchat-web`, which the person at the browser knows nothing about, and many
  tabs share that machine.
- Nothing personal is kept on disk (`settings_path`, `ignore_path` are None): the files would be
  those of the account that runs `labchat-web`, shared by every student who opens the page. The
  theme and /ignore last for the tab.
- The pinned server keys are shared: the server is the operator's choice, fixed on the command line,
  so one pin (the operator's known_servers file) serves every tab.
- No desktop notifications: the escape sequence means nothing to a browser's terminal.
- It dies with labchat-web (Linux): a tab's app left running after `kill -9` of labchat-web would
  hold its socket and its user's session until the server timed it out, and never end.
- The seat (protocol 20.2) is the browser's address, which labchat-web passes as `--seat`: this
  machine's name, the default elsewhere, would be every tab's.

This is an internal entry point, not a command: its arguments are whatever `labchat-web` passes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..client.core import ClientError, parse_host_port
from ..client.known_servers import KnownServers
from ..i18n import set_language
from ..signal_handlers import die_with_parent
from .app import make_app


def main(argv: list[str] | None = None) -> int:
    parent = os.getppid()
    die_with_parent()  # labchat-web killed outright: this tab goes too, not left holding its socket
    if os.getppid() != parent:
        return 0  # it died before that took hold
    args = list(sys.argv[1:] if argv is None else argv)
    seat: str | None = None
    if len(args) >= 2 and args[-2] == "--seat":  # labchat-web puts it last of all
        seat = args[-1]
        del args[-2:]
    fallbacks: list[tuple[str, int]] = []
    while len(args) >= 2 and args[-2] == "--fallback":  # labchat-web puts them last
        try:
            fallbacks.insert(0, parse_host_port(args[-1]))
        except ClientError as exc:
            print(f"labchat-web: {exc}", file=sys.stderr)
            return 2
        del args[-2:]
    if len(args) not in (3, 4) or not args[1].isdigit():
        print(
            "labchat-web: the tab process takes SERVER_IP SERVER_PORT KNOWN_SERVERS [LANG]", file=sys.stderr
        )
        return 2
    try:
        set_language(args[3] if len(args) == 4 else None)  # labchat-web's --lang, else the locale
    except ValueError:
        print(f"labchat-web: the tab process got an unknown language {args[3]!r}", file=sys.stderr)
        return 2
    server_ip, server_port, known_path = args[0], int(args[1]), Path(args[2])
    app = make_app(
        server_ip,
        server_port,
        0,
        fixed_server=True,
        notify=False,
        settings_path=None,
        ignore_path=None,
        known_servers=KnownServers(known_path),
        fallbacks=tuple(fallbacks),
        seat=seat,
    )
    try:
        code = app.run()
    except KeyboardInterrupt:
        return 130
    return code if code is not None else 0


if __name__ == "__main__":
    sys.exit(main())
