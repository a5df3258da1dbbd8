"""Per-user files: the platform's place (platformdirs), and files already at the older XDG place."""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs
import pytest

from labchat import paths
from labchat.client import paths as client_paths
from labchat.client.known_servers import default_known_servers_path
from labchat.server.store import default_db_path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG layout is Linux's")
def test_linux_places_are_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert client_paths.data_dir() == tmp_path / "labchat"
    assert default_known_servers_path() == tmp_path / "labchat" / "known_servers"
    assert default_db_path() == tmp_path / "labchat" / "server.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    home = Path.home() / ".local" / "share" / "labchat"
    assert paths.platform_data_dir() == paths.legacy_data_dir() == home
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")  # invalid per the XDG spec: ignored
    assert paths.platform_data_dir() == home


def test_files_only_at_the_old_place_are_still_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As on macOS or Windows after an upgrade: the platform's directory differs from the old XDG one."""
    new, old_home = tmp_path / "Application Support", tmp_path / "xdg"
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda name, appauthor=None: str(new / name))
    monkeypatch.setenv("XDG_DATA_HOME", str(old_home))
    old = old_home / "labchat"
    # Nothing anywhere: the platform's place.
    assert client_paths.known_servers_path() == new / "labchat" / "known_servers"
    assert client_paths.data_dir() == new / "labchat"
    # Pinned keys and a database from before: still found where they are.
    old.mkdir(parents=True)
    (old / "known_servers").write_text("# pinned\n")
    (old / "server.db").write_bytes(b"")
    assert default_known_servers_path() == old / "known_servers"
    assert default_db_path() == old / "server.db"
    assert client_paths.data_dir() == old
    # Once the platform's place has the file, it wins.
    (new / "labchat").mkdir(parents=True)
    (new / "labchat" / "known_servers").write_text("# pinned\n")
    assert default_known_servers_path() == new / "labchat" / "known_servers"
    assert client_paths.data_dir() == new / "labchat"
