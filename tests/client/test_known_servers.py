"""The pinned server keys file: lookups, updates, 0600 permissions and tolerance of bad lines."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from labchat.client.known_servers import KnownServers, default_known_servers_path

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


def test_missing_file_knows_nothing(tmp_path: Path) -> None:
    assert KnownServers(tmp_path / "none").lookup("host", 1) is None


def test_remember_lookup_forget(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "known_servers"
    known = KnownServers(path)
    known.remember("Chat.Lan", 7777, KEY_A)
    known.remember("10.0.0.2", 7777, KEY_B)
    assert known.lookup("chat.lan", 7777) == KEY_A  # host names compare case-insensitively
    assert known.lookup("chat.lan", 7778) is None
    assert known.lookup("10.0.0.2", 7777) == KEY_B
    known.remember("chat.lan", 7777, KEY_B)  # replaces, does not duplicate
    assert known.lookup("chat.lan", 7777) == KEY_B
    assert path.read_text().count("chat.lan:7777") == 1
    known.forget("chat.lan", 7777)
    assert known.lookup("chat.lan", 7777) is None
    assert known.lookup("10.0.0.2", 7777) == KEY_B
    if os.name != "nt":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_ipv6_hosts(tmp_path: Path) -> None:
    known = KnownServers(tmp_path / "known_servers")
    known.remember("::1", 9000, KEY_A)
    assert "[::1]:9000" in (tmp_path / "known_servers").read_text()
    assert known.lookup("::1", 9000) == KEY_A
    assert known.lookup("[::1]", 9000) == KEY_A


def test_corrupt_lines_are_skipped_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "known_servers"
    good = base64.b64encode(KEY_A).decode()
    path.write_bytes(
        b"# my servers\n"
        b"\n"
        b"garbage\n"
        b"host:notaport " + good.encode() + b"\n"
        b"host:70000 " + good.encode() + b"\n"
        b"short:1 " + base64.b64encode(b"abc") + b"\n"
        b"bad64:1 !!!!\n"
        b"\xff\xfe:1 binary\n"
        b"good:1 " + good.encode() + b"  # trailing comment\n"
    )
    known = KnownServers(path)
    assert known.lookup("good", 1) == KEY_A
    assert known.lookup("short", 1) is None and known.lookup("bad64", 1) is None
    known.remember("new", 2, KEY_B)
    text = path.read_text(errors="replace")
    assert "garbage" in text and "# my servers" in text  # the user's lines survive rewrites
    assert known.lookup("new", 2) == KEY_B and known.lookup("good", 1) == KEY_A


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    known = KnownServers(tmp_path / "known_servers")
    for port in range(5):
        known.remember("h", port + 1, KEY_A)
    assert [p.name for p in tmp_path.iterdir()] == ["known_servers"]


def test_remember_rejects_a_bad_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        KnownServers(tmp_path / "k").remember("h", 1, b"short")


def test_default_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_known_servers_path() == tmp_path / "labchat" / "known_servers"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")  # invalid per the XDG spec: ignored
    expected = Path.home() / ".local" / "share" / "labchat" / "known_servers"
    assert default_known_servers_path() == expected
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_known_servers_path() == expected
