"""The client's own files: pinned server keys, and a data directory for anything else it keeps
(ignore lists, a chosen theme). The platform rules and the fallback to older places are in
`labchat.paths`."""

from __future__ import annotations

from pathlib import Path

from .. import paths


def data_dir() -> Path:
    """The directory for the client's per-user data (create it before writing: it may not exist)."""
    return paths.user_data_dir()


def ignore_list_path() -> Path:
    """The names this user ignores (`/ignore`), kept across runs on this machine (ignore_list.py)."""
    return paths.user_data_file("ignored")


def ui_settings_path() -> Path:
    """The full-screen app's own settings, such as the chosen theme (tui/ui_settings.py)."""
    return paths.user_data_file("ui.json")


def known_servers_path() -> Path:
    """The pinned server keys file (see known_servers.py)."""
    return paths.user_data_file("known_servers")
