"""Owner-only files and directories for what the server keeps on disk.

Why: the database holds every account's scrypt hash and every message of the room; its WAL and SHM
files hold the latest of both. Created with the usual 0644 in a 0755 directory, any local user of the
server machine could read them all. So the server's directory is created 0700 and its files 0600,
before anything is written to them (SQLite gives a database's `-wal` and `-shm` files the mode of the
database file itself, so a database created 0600 keeps its companions private too).

A file that already exists with a wider mode was perhaps copied already: the server still tightens it
if it owns it (so that it stops leaking from now on) and says so; a directory it only warns about,
with the command to run, since the operator may keep other things in it. POSIX modes mean little on
Windows (its ACLs are out of scope), so every function here does nothing there.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from ..i18n import _

#: Owner read/write only: the database and every file beside it.
PRIVATE_FILE_MODE = 0o600
#: Owner only: the directory that holds them.
PRIVATE_DIR_MODE = 0o700
#: SQLite's companions of a database file in WAL mode.
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")

_POSIX = os.name != "nt"


def make_private_dir(path: Path) -> list[str]:
    """Create `path` (and its parents) if absent, itself 0700; warnings about an existing one.

    Returns:
        One line per problem: the directory lets others in, with the chmod that fixes it.

    Raises:
        OSError: the directory cannot be created.
    """
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        if _POSIX:
            with contextlib.suppress(OSError):
                os.chmod(path, PRIVATE_DIR_MODE)  # mkdir's mode is cut by the umask; chmod is not
        return []
    if not _POSIX:
        return []
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & stat.S_ISVTX:  # /tmp and the like: shared on purpose, never to be chmod-ed
        shared = _(
            "directory {path} is shared with other users (mode {mode}); the files are private, but "
            "keep the database in a directory of its own"
        )
        return [shared.format(path=path.resolve(), mode=f"{mode:o}")]
    if mode & 0o077:
        shown = path.resolve()
        seen = _(
            "directory {path} lets other users see the server's files (mode {mode}); their contents "
            "are private, but run 'chmod 700 {path}' unless others must use it"
        )
        return [seen.format(path=shown, mode=f"{mode:o}")]
    return []


def create_private_file(path: Path) -> None:
    """Create `path` empty and 0600 if it does not exist, so that whoever writes it next (SQLite)
    finds it private from its first byte: the mode applies at creation, not after a window."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        os.close(fd)


def tighten_file(path: Path) -> str | None:
    """Make an existing file 0600 if others may read it; a line saying what was found and done.

    Returns:
        None when the file is absent or already private; otherwise one line for the operator: the
        file was tightened (the server owns it), or the chmod to run (it does not, or chmod failed).
    """
    if not _POSIX:
        return None
    try:
        st = path.stat()
    except OSError:
        return None  # absent (a WAL not created yet): nothing to protect
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077 or not stat.S_ISREG(st.st_mode):
        return None
    if st.st_uid == os.geteuid():
        try:
            os.chmod(path, PRIVATE_FILE_MODE)
        except OSError as exc:
            failed = _("{path} is readable by other users (mode {mode}) and chmod failed: {error}")
            return failed.format(path=path, mode=f"{mode:o}", error=exc.strerror)
        made = _(
            "{path} was readable by other users (mode {mode}); made it {private}. "
            "Its contents may have been copied already"
        )
        return made.format(path=path, mode=f"{mode:o}", private=f"{PRIVATE_FILE_MODE:o}")
    return _("{path} is readable by other users (mode {mode}); run 'chmod 600 {path}'").format(
        path=path, mode=f"{mode:o}"
    )


def tighten_database_files(db: Path) -> list[str]:
    """`tighten_file` for a SQLite database and each of its companion files that exists."""
    lines = []
    for suffix in SQLITE_SUFFIXES:
        line = tighten_file(db.with_name(db.name + suffix))
        if line is not None:
            lines.append(line)
    return lines
