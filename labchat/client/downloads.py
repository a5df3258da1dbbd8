"""Files on this machine for transfers (docs/protocol.md 21.5, 21.6): where downloads land, the safe
name each is saved under, the temporary file a download is written to until its SHA-256 is checked,
and folders packed into a tar stream on the fly and unpacked safely.

Every name that comes from the network is made safe here before it touches the disk; nothing in it is
trusted (the server checks names too, but a receiver must not rely on that). A download is written to
a hidden temporary file beside its target and given its final name only once verified, never over an
existing file, and never executable. A full disk (ENOSPC) or a file-size limit (EFBIG) removes the
partial file and is one line for the user.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import hashlib
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import platformdirs

from ..i18n import _

DOWNLOADS_ENV = "LABCHAT_DOWNLOADS"
#: Bytes hashed (or copied) per step: small enough that a worker thread gives the loop back often.
HASH_BLOCK = 1024 * 1024

_UNSAFE = re.compile(r'[/\\<>:"|?*\x00-\x1f\x7f-\x9f]')
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"COM{i}" for i in range(1, 10)] + [f"LPT{i}" for i in range(1, 10)]
)
_DOUBLE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst")
_MAX_NAME_BYTES = 255


class SaveError(Exception):
    """A download could not be saved; the message is one line for the user."""


def default_downloads_dir() -> Path:
    """Where downloads go: $LABCHAT_DOWNLOADS, else the platform's downloads folder + `labchat`."""
    env = os.environ.get(DOWNLOADS_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_downloads_dir()) / "labchat"


def safe_name(name: str) -> str:
    """`name` as a file name that is safe to save on any platform (21.5): its last path component
    only; `/`, `\\`, NUL, control characters and `<>:"|?*` replaced with `_`; leading dots and
    trailing dots and spaces dropped; `_` before a Windows reserved name (CON, NUL, COM1...,
    with any extension); at most 255 bytes, the extension kept. Never empty ("file")."""
    last = re.split(r"[/\\]", name)[-1]
    clean = _UNSAFE.sub("_", last).lstrip(".").rstrip(". ")
    if not clean:
        clean = "file"
    if clean.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        clean = "_" + clean
    if len(clean.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        stem, suffix = _split_suffix(clean)
        suffix = suffix if len(suffix.encode("utf-8", "surrogatepass")) <= 32 else ""
        budget = _MAX_NAME_BYTES - len(suffix.encode("utf-8", "surrogatepass"))
        stem = stem.encode("utf-8", "surrogatepass")[:budget].decode("utf-8", "ignore")
        clean = stem + suffix
    return clean


def _split_suffix(name: str) -> tuple[str, str]:
    lower = name.lower()
    for double in _DOUBLE_SUFFIXES:
        if lower.endswith(double) and len(name) > len(double):
            return name[: -len(double)], name[-len(double) :]
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    return name[:dot], name[dot:]


def candidates(name: str) -> list[str]:
    """`name`, then `name (1)`, `name (2)`... with the extension kept at the end (`lab3 (1).py`)."""
    stem, suffix = _split_suffix(name)
    return [name] + [f"{stem} ({i}){suffix}" for i in range(1, 1000)]


def make_dir(directory: Path) -> None:
    """Create the downloads directory if needed.

    Raises:
        SaveError: it cannot be made (a file in the way, no permission).
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SaveError(
            _("cannot use the downloads folder {path}: {error}").format(
                path=directory, error=exc.strerror or exc
            )
        ) from None


def _disk_words(exc: OSError, path: Path) -> str:
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):  # full, or over a disk quota
        return _("the disk is full: {folder} has no room for it").format(folder=path.parent)
    if exc.errno == errno.EFBIG:
        return _("the file is larger than this system allows to write in {folder}").format(folder=path.parent)
    return _("cannot write to {folder}: {error}").format(folder=path.parent, error=exc.strerror or exc)


class Incoming:
    """One download on disk: a hidden temporary file beside its target, written in order, then
    moved to a free name (`lab3 (1).py`) once the connection has verified the whole."""

    def __init__(self, directory: Path, name: str, file_id: int, *, folder: bool = False) -> None:
        """Raises SaveError when the temporary file cannot be created."""
        self.directory = directory
        self.name = safe_name(name)
        self.folder = folder
        self.part = directory / f".{self.name}.{file_id}.labchat-part"
        make_dir(directory)
        try:
            # 0o666 less the umask: read-write, never executable (21.5).
            fd = os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o666)
        except OSError as exc:
            raise SaveError(_disk_words(exc, self.part)) from None
        self._file = os.fdopen(fd, "wb", buffering=256 * 1024)
        self.written = 0

    def write(self, offset: int, data: bytes) -> None:
        """Write `data` at `offset` (the next byte: the connection hands bytes in order).

        Raises:
            SaveError: the disk is full, or another write error (the partial file is removed).
        """
        try:
            if offset != self.written:
                self._file.seek(offset)
                self._file.truncate()
            self._file.write(data)
            self.written = offset + len(data)
        except OSError as exc:
            self.discard()
            raise SaveError(_disk_words(exc, self.part)) from None

    def finish(self) -> Path:
        """Close the verified file and give it its final, free name: the saved path. A folder is
        unpacked (safely, 21.6) into a new folder of that name instead.

        Raises:
            SaveError: it could not be written out, moved or unpacked (nothing is left behind).
        """
        try:
            self._file.close()
        except OSError as exc:
            self.discard()
            raise SaveError(_disk_words(exc, self.part)) from None
        try:
            return unpack_folder(self.part, self.directory, self.name) if self.folder else self._move()
        finally:
            with contextlib.suppress(OSError):
                self.part.unlink()

    def _move(self) -> Path:
        for candidate in candidates(self.name):
            target = self.directory / candidate
            try:
                os.link(self.part, target)  # fails if the name is taken: never overwrite
                return target
            except FileExistsError:
                continue
            except OSError:
                pass  # no hard links here (FAT, some network shares): claim the name, then replace
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            except OSError as exc:
                raise SaveError(
                    _("cannot save {path}: {error}").format(path=target, error=exc.strerror or exc)
                ) from None
            os.close(fd)
            try:
                os.replace(self.part, target)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    target.unlink()
                raise SaveError(
                    _("cannot save {path}: {error}").format(path=target, error=exc.strerror or exc)
                ) from None
            return target
        raise SaveError(
            _("too many files named like {name} in {folder}").format(name=self.name, folder=self.directory)
        )

    def discard(self) -> None:
        """Remove the partial file (a failure, a cancel, a mismatch)."""
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self.part.unlink()


# ---------------------------------------------------------------- sending: files and folders


class Source:
    """What an upload reads from: `size` bytes, read at any offset (in order, nearly always)."""

    size: int

    def read_at(self, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def digest(self, stop: Callable[[], bool] = lambda: False) -> bytes:
        """The SHA-256 of the whole, a block at a time (run it in a worker thread)."""
        hasher = hashlib.sha256()
        offset = 0
        while offset < self.size and not stop():
            block = self.read_at(offset, min(HASH_BLOCK, self.size - offset))
            if not block:
                raise OSError(errno.EIO, _("the file got shorter while it was read"))
            hasher.update(block)
            offset += len(block)
        return hasher.digest()


class FileSource(Source):
    """A regular file."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (kept open for the upload's life)
        self.size = os.fstat(self._file.fileno()).st_size

    def read_at(self, offset: int, length: int) -> bytes:
        if self._file.tell() != offset:
            self._file.seek(offset)
        return self._file.read(length)

    def close(self) -> None:
        self._file.close()


class FolderSource(Source):
    """A folder as a POSIX (pax) tar stream made on the fly (21.6): its regular files and
    directories, sorted, named under the folder's name; no links, devices or anything outside.

    The headers are made up front (from one walk), so the stream's size is known and any offset can
    be read at once: a resumed upload starts in the middle without packing what went before."""

    def __init__(self, path: Path) -> None:
        root = path.resolve()
        self._segments: list[tuple[int, bytes | Path, int]] = []  # (start, header bytes or file, size)
        self._starts: list[int] = []
        self._open: tuple[Path, object] | None = None
        offset = 0
        for arcname, full, st in _walk(root):
            info = tarfile.TarInfo(arcname)
            info.mtime = int(st.st_mtime)
            if stat.S_ISDIR(st.st_mode):
                info.type, info.mode, size = tarfile.DIRTYPE, 0o755, 0
            else:
                info.type, info.mode, size = tarfile.REGTYPE, 0o644, st.st_size
                info.size = size
            header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            offset = self._add(offset, header, len(header))
            if size:
                offset = self._add(offset, full, size)
                padding = -size % tarfile.BLOCKSIZE
                if padding:
                    offset = self._add(offset, bytes(padding), padding)
        self.size = self._add(offset, bytes(2 * tarfile.BLOCKSIZE), 2 * tarfile.BLOCKSIZE)

    def _add(self, offset: int, what: bytes | Path, size: int) -> int:
        self._segments.append((offset, what, size))
        self._starts.append(offset)
        return offset + size

    def read_at(self, offset: int, length: int) -> bytes:
        out = bytearray()
        index = bisect.bisect_right(self._starts, offset) - 1
        while length > 0 and 0 <= index < len(self._segments):
            start, what, size = self._segments[index]
            inner = offset - start
            take = min(length, size - inner)
            if isinstance(what, bytes):
                piece = what[inner : inner + take]
            else:
                piece = self._read_file(what, inner, take)
            out += piece
            offset += take
            length -= take
            index += 1
        return bytes(out)

    def _read_file(self, path: Path, offset: int, length: int) -> bytes:
        if self._open is None or self._open[0] != path:
            self.close()
            self._open = (path, open(path, "rb"))  # noqa: SIM115
        handle = self._open[1]
        handle.seek(offset)  # type: ignore[attr-defined]
        data: bytes = handle.read(length)  # type: ignore[attr-defined]
        # A file that shrank since the walk is padded (the SHA-256 will show it changed).
        return data + bytes(length - len(data))

    def close(self) -> None:
        if self._open is not None:
            with contextlib.suppress(OSError):
                self._open[1].close()  # type: ignore[attr-defined]
            self._open = None


def _walk(root: Path) -> list[tuple[str, Path, os.stat_result]]:
    """(name in the archive, path, stat) of `root` and everything regular under it, sorted."""
    out: list[tuple[str, Path, os.stat_result]] = [(root.name, root, root.stat())]
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        for name in sorted(dirnames) + sorted(filenames):
            full = here / name
            try:
                st = full.lstat()
            except OSError:
                continue
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                continue  # links, devices, sockets, fifos: never sent
            out.append((f"{root.name}/{full.relative_to(root).as_posix()}", full, st))
    return out


def open_source(path: Path) -> Source:
    """The file or folder at `path`, ready to be read.

    Raises:
        OSError: it cannot be read; ValueError: it is neither a file nor a folder.
    """
    st = path.stat()
    if stat.S_ISDIR(st.st_mode):
        return FolderSource(path)
    if stat.S_ISREG(st.st_mode):
        return FileSource(path)
    raise ValueError(f"{path} is not a file or a folder")


def unpack_folder(archive: Path, directory: Path, name: str) -> Path:
    """Unpack a received folder's tar stream into a new folder `name` (or `name (1)`...) under
    `directory`: the whole is refused, and nothing left, if any member is absolute, has `..`, is a
    link or a device, or would land outside (21.6). Files are never executable.

    Raises:
        SaveError: the archive breaks those rules or cannot be read or written.
    """
    try:
        with tarfile.open(archive, "r:") as tar:
            members = tar.getmembers()
            _check_members(members)
            target = _claim_dir(directory, name)
            try:
                for member in members:
                    # Strip the archive's own top folder: its contents land in ours.
                    rel = member.name.split("/", 1)[1] if "/" in member.name else ""
                    if not rel:
                        continue
                    member.name = rel
                    tar.extract(member, target, filter=_receiver_filter)
            except (OSError, tarfile.TarError) as exc:
                shutil.rmtree(target, ignore_errors=True)
                raise SaveError(_("cannot unpack the folder: {error}").format(error=exc)) from None
            return target
    except (OSError, tarfile.TarError) as exc:
        raise SaveError(
            _("the folder that arrived is not a readable tar stream: {error}").format(error=exc)
        ) from None


def _check_members(members: list[tarfile.TarInfo]) -> None:
    """Raise SaveError naming the first member that breaks the rules of 21.6."""
    top = ""
    for member in members:
        name = member.name
        parts = name.split("/")
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts or "\\" in name:
            raise SaveError(_("refused the folder: member {name!r} points outside it").format(name=name))
        if not (member.isreg() or member.isdir()):
            raise SaveError(_("refused the folder: member {name!r} is a link or a device").format(name=name))
        top = top or parts[0]
        if parts[0] != top:
            raise SaveError(
                _("refused the folder: member {name!r} is outside its folder {top!r}").format(
                    name=name, top=top
                )
            )


def _receiver_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's 'data' filter, and no executable bits on files."""
    member = tarfile.data_filter(member, dest)
    if member.isreg():
        return member.replace(mode=(member.mode or 0o644) & 0o666, deep=False)
    return member


def _claim_dir(directory: Path, name: str) -> Path:
    make_dir(directory)
    for candidate in candidates(name):
        target = directory / candidate
        try:
            target.mkdir()
            return target
        except FileExistsError:
            continue
    raise SaveError(_("too many folders named like {name} in {folder}").format(name=name, folder=directory))
