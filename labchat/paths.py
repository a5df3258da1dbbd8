"""Where labchat keeps per-user files on each platform: shared by the server and the client.

`platformdirs` knows each platform's convention: `$XDG_DATA_HOME/labchat` (default
`~/.local/share/labchat`) on Linux and the BSDs, `~/Library/Application Support/labchat` on macOS,
`%LOCALAPPDATA%\\labchat` on Windows. Before it was used, labchat built the XDG path by hand on every
platform, so a macOS user may already have pinned keys or a server database there: a file that exists
only at that old place is still used from there, so that no account, history or pinned key is lost.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "labchat"


def platform_data_dir() -> Path:
    """This platform's per-user data directory for labchat (it may not exist yet)."""
    path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    if not path.is_absolute():
        # A relative $XDG_DATA_HOME is invalid per the XDG spec and must be ignored.
        path = Path.home() / ".local" / "share" / APP_NAME
    return path


def legacy_data_dir() -> Path:
    """The hand-built XDG place labchat used on every platform before: `$XDG_DATA_HOME/labchat`, or
    `~/.local/share/labchat` (on Linux the same as `platform_data_dir()`)."""
    data_home = os.environ.get("XDG_DATA_HOME", "")
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return base / APP_NAME


def user_data_dir() -> Path:
    """The directory to keep labchat's per-user data in: the platform's, unless only the old one
    exists (a user of an older labchat on macOS or Windows)."""
    new, old = platform_data_dir(), legacy_data_dir()
    if new != old and not new.exists() and old.is_dir():
        return old
    return new


def user_data_file(name: str) -> Path:
    """The path of the data file `name`: in the platform's directory, unless the file exists only in
    the old one (then there, so an existing database or key file keeps being used)."""
    new, old = platform_data_dir() / name, legacy_data_dir() / name
    if new != old and not new.exists() and old.exists():
        return old
    return new
