"""The command labchat-web has textual-serve run for each tab: it goes through a shell, so quoting matters."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from labchat.tui.web import _TAB_ADDRESS, WebServer, tab_command


def apps_built(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """What the tab process hands `make_app`, recorded: the Textual app itself is not started here."""
    from labchat.tui import web_tab

    seen: dict[str, object] = {}

    class Built:
        def run(self) -> int:
            return 0

    def build(*args: object, **kwargs: object) -> Built:
        seen.update(kwargs)
        return Built()

    monkeypatch.setattr(web_tab, "make_app", build)
    return seen


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell quoting")
def test_the_tab_command_survives_the_shell(tmp_path: Path) -> None:
    known = tmp_path / "it's $HOME; `x` & y" / "known servers"
    command = tab_command("fe80::1%eth0", 8080, known)
    assert command.startswith("exec ")
    argv = shlex.split(command.removeprefix("exec "))
    assert argv == [sys.executable, "-m", "labchat.tui.web_tab", "fe80::1%eth0", "8080", str(known)]


def test_fallbacks_reach_every_tab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`labchat-web --fallback` (protocol 22): each tab's app gets the same relays to move to."""
    from labchat.tui import web_tab

    command = tab_command("10.0.0.1", 8080, tmp_path / "known", None, (("10.0.0.2", 8080), ("::1", 9000)))
    argv = shlex.split(command.removeprefix("exec ")) if sys.platform != "win32" else command.split()
    assert argv[-4:] == ["--fallback", "10.0.0.2:8080", "--fallback", "[::1]:9000"]
    seen = apps_built(monkeypatch)
    assert web_tab.main(argv[3:]) == 0
    assert seen["fallbacks"] == (("10.0.0.2", 8080), ("::1", 9000))
    assert web_tab.main(["10.0.0.1", "8080", "known", "--fallback", "nowhere"]) == 2


def test_each_tab_is_seated_at_its_browsers_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tab runs on the labchat-web machine: its seat (protocol 20.2) is the browser's address,
    passed last as `--seat`, and only to the tab being opened (a context variable of its task)."""
    from labchat.tui import web_tab

    base = tab_command("10.0.0.1", 8080, tmp_path / "known", None, (("10.0.0.2", 8080),))
    web = WebServer(base, host="127.0.0.1", port=0, server_label="10.0.0.1:8080")
    assert web.command == base  # no tab being opened: as given
    token = _TAB_ADDRESS.set("10.0.0.14")
    try:
        command = web.command
    finally:
        _TAB_ADDRESS.reset(token)
    assert web.command == base
    argv = shlex.split(command.removeprefix("exec ")) if sys.platform != "win32" else command.split()
    assert argv[-4:] == ["--fallback", "10.0.0.2:8080", "--seat", "10.0.0.14"]
    seen = apps_built(monkeypatch)
    assert web_tab.main(argv[3:]) == 0
    assert (seen["seat"], seen["fallbacks"]) == ("10.0.0.14", (("10.0.0.2", 8080),))
    assert web_tab.main(["10.0.0.1", "8080", "known"]) == 0 and seen["seat"] is None  # the host name
