"""The command labchat-web has textual-serve run for each tab: it goes through a shell, so quoting matters."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from labchat.tui.web import tab_command


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell quoting")
def test_the_tab_command_survives_the_shell(tmp_path: Path) -> None:
    known = tmp_path / "it's $HOME; `x` & y" / "known servers"
    command = tab_command("fe80::1%eth0", 8080, known)
    assert command.startswith("exec ")
    argv = shlex.split(command.removeprefix("exec "))
    assert argv == [sys.executable, "-m", "labchat.tui.web_tab", "fe80::1%eth0", "8080", str(known)]
