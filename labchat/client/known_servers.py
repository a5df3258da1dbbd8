"""The client's pinned server keys (trust on first use, like OpenSSH's known_hosts).

One line per server, `host:port base64key` (IPv6 hosts as `[addr]:port`); `#` starts a comment.
A line that does not parse is skipped rather than fatal: a hand-edited file must not lock the user
out. Writes go to a temporary file that replaces the old one, so a crash never leaves a half
written file, and the file is owner-only (0600) because it tells others which servers you use.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from pathlib import Path

from .paths import known_servers_path

#: X25519 public keys are 32 bytes.
SERVER_KEY_BYTES = 32
KNOWN_SERVERS_FILE_MODE = 0o600
KNOWN_SERVERS_DIR_MODE = 0o700


def default_known_servers_path() -> Path:
    """The platform's data directory (client/paths.py): `$XDG_DATA_HOME/labchat/known_servers` on
    Linux, falling back to ~/.local/share; the older place if the file is only there."""
    return known_servers_path()


def _server_label(host: str, port: int) -> str:
    host = host.strip().strip("[]").lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_line(line: str) -> tuple[str, bytes] | None:
    """(label, key) for a valid entry; None for comments, blanks and corrupt lines."""
    text = line.split("#", 1)[0].strip()
    parts = text.split()
    if len(parts) != 2:
        return None
    label, encoded = parts
    host, sep, port_text = label.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(key) != SERVER_KEY_BYTES:
        return None
    return _server_label(host, int(port_text)), key


class KnownServers:
    """The pinned keys file at `path`. Read on every lookup so edits by hand take effect at once.

    A missing file means no servers are known. Any other read error propagates: treating an
    unreadable file as empty would silently turn every server into a "first contact".
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _lines(self) -> list[str]:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def lookup(self, host: str, port: int) -> bytes | None:
        """The pinned key for host:port, or None if there is none (the last entry wins)."""
        wanted = _server_label(host, port)
        found: bytes | None = None
        for line in self._lines():
            entry = _parse_line(line)
            if entry is not None and entry[0] == wanted:
                found = entry[1]
        return found

    def remember(self, host: str, port: int, key: bytes) -> None:
        """Pin `key` for host:port, replacing any previous entry and keeping every other line."""
        if len(key) != SERVER_KEY_BYTES:
            raise ValueError(f"a server key is {SERVER_KEY_BYTES} bytes")
        label = _server_label(host, port)
        lines = self._without(label)
        lines.append(f"{label} {base64.b64encode(key).decode('ascii')}")
        self._write(lines)

    def forget(self, host: str, port: int) -> None:
        """Remove the entry for host:port (the user accepted a new server key)."""
        label = _server_label(host, port)
        lines = self._lines()
        kept = self._without(label, lines)
        if kept != lines:
            self._write(kept)

    def _without(self, label: str, lines: list[str] | None = None) -> list[str]:
        source = self._lines() if lines is None else lines
        return [
            line for line in source if (entry := _parse_line(line)) is None or entry[0] != label
        ]

    def _write(self, lines: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=KNOWN_SERVERS_DIR_MODE)
        if not lines or not lines[0].startswith("#"):
            lines.insert(0, "# labchat known servers: host:port base64-key (see docs/security.md)")
        # mkstemp creates the file 0600, so the content is never visible to others.
        fd, temp_name = tempfile.mkstemp(prefix=".known_servers.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp_name, KNOWN_SERVERS_FILE_MODE)
            os.replace(temp_name, self.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
