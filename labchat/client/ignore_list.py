"""The names a user has chosen to /ignore, kept in a plain text file: one name per line.

Plain text so that a user can read and edit it; written atomically (a temporary file beside it, then
`os.replace`), so a crash or a full disk mid-write leaves the old list rather than half a list. The path is
an argument: the caller decides where it lives (the user's config directory).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ..i18n import _
from ..protocol.messages import is_valid_name, name_key


class IgnoreListError(Exception):
    """The list cannot be read or written; the message says which file and why, in one line."""


def load_ignored(path: Path) -> list[str]:
    """The names in `path`, in file order, without duplicates (case-insensitively). A missing file is
    an empty list; lines that are blank, comments (`#`) or not valid names are skipped, so a hand
    edit cannot stop the client from starting.

    Raises:
        IgnoreListError: the file exists but cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise IgnoreListError(
            _("cannot read ignore list {path}: {reason}").format(path=path, reason=exc.strerror or exc)
        ) from None
    names: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        name = line.strip()
        if not name or name.startswith("#") or not is_valid_name(name) or name_key(name) in seen:
            continue
        seen.add(name_key(name))
        names.append(name)
    return names


def save_ignored(path: Path, names: Iterable[str]) -> None:
    """Write `names`, one per line, replacing `path` atomically.

    Raises:
        IgnoreListError: the directory or file cannot be written.
    """
    body = "".join(f"{name}\n" for name in names)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise IgnoreListError(
            _("cannot write ignore list {path}: {reason}").format(path=path, reason=exc.strerror or exc)
        ) from None
