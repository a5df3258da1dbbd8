"""Files on the server (docs/protocol.md section 21): offers, uploads to disk, downloads with flow
control, per-user quotas and retention.

Where the bytes live: a directory beside the database (`<db dir>/files/`, or `--files-dir`), one file
per upload named by its id alone (`17.part` while it arrives, `17` once verified): the user's name
never reaches the file system, so no name can escape the directory, clash with a reserved Windows
name or hide a file. What a file is (sender, room, name, size, SHA-256, when it was stored) is a row
of the `files` table in the server's database; a row whose `stored_ms` is NULL is an upload under way.

Why the work stays small per event: the relay runs on one event loop, and a 100 MB upload must not
stall a room. A chunk is one append (`os.write` on an O_APPEND descriptor) and one SHA-256 update of
its 960 bytes, so the digest of the whole is ready when the last byte lands. An upload resumed after
a restart has no digest state: it is rebuilt from the partial file a bounded step per chunk received
(`REHASH_STEP_BYTES`), so it catches up long before the end. Downloads read one chunk per FILE_DATA
frame and queue at most `window_frames` unacknowledged frames per session (21.5): a slow receiver
holds back the server's reading, never fills its memory. The relay calls `pump` whenever a session's
acknowledgements arrive, as it calls `_catch_up` for a lagging room.

A file missing or damaged on disk (deleted by hand, a truncated copy) is answered NO_SUCH_FILE and
logged, never an exception out of the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sqlite3
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..i18n import _
from ..protocol import messages as m
from ..protocol.errors import DecodeError, ErrorCode
from ..protocol.text import truncate_utf8
from ..protocol.wire import encode_message
from .private_files import make_private_dir
from .retention import prune_in_rounds
from .room import Act, may
from .store import Store, StoreError

if TYPE_CHECKING:
    from .relay import Relay, Session

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DAY_S = 86_400.0
#: FILE_DATA frames one session may have unacknowledged (21.5).
WINDOW_FRAMES = 64
#: A resumed upload's digest is rebuilt from its partial file this many bytes per chunk received:
#: 270 times the chunk, so even an upload resumed at 99 % has caught up well before its last byte.
REHASH_STEP_BYTES = 256 * 1024
#: An upload's chunks are written to its partial file in blocks of this much: one write() per chunk
#: of 960 bytes was a fifth of the relay's time during an upload. What a crash loses of the block is
#: sent again (the sender resumes from what the partial file holds, 21.3); memory is bounded by
#: MAX_OPEN_UPLOADS blocks.
WRITE_BLOCK_BYTES = 64 * 1024
#: Rows deleted per pruning batch (each also removes one file from disk).
PRUNE_BATCH_FILES = 50
#: The largest id or offset SQLite and the disk are asked about; anything above is unknown.
_MAX_I64 = (1 << 63) - 1
#: Kinds whose body starts with a request_id: a body that does not decode is still answered.
REQUEST_KINDS = frozenset({m.Kind.FILE_OFFER, m.Kind.FILES})
#: What a client sends about files (21.1).
FileRequest = m.FileOffer | m.FileChunk | m.FileGet | m.FileCancel | m.ListFiles
#: Stored files sent to one session per FILES or join: a room's listing, newest last.
MAX_LISTED = 200
#: Files one user may have kept or under way at once, whatever their size: a quota in bytes alone
#: would let a loop of one-byte offers fill the table.
MAX_FILES_PER_USER = 500
#: Unfinished uploads one user may have at once.
MAX_UPLOADS_PER_USER = 16
#: Uploads held open (a descriptor each) across all users; the least recently written is closed
#: beyond it and reopened from its partial file when its next chunk comes.
MAX_OPEN_UPLOADS = 256
#: Downloads one session may have under way at once (each holds a descriptor).
MAX_STREAMS_PER_SESSION = 8


@dataclass(frozen=True, slots=True)
class FilePolicy:
    """What the server keeps (`--max-file-mb`, `--quota-mb`, `--file-retention-days`, `--files-dir`)."""

    #: The largest file accepted (21.3: FILE_TOO_LARGE above).
    max_file_bytes: int = 100 * MIB
    #: The bytes one user's kept files and unfinished uploads may take (QUOTA above).
    quota_bytes: int = 500 * MIB
    #: A stored file is deleted this long after it was stored.
    retention_s: float = 7 * DAY_S
    #: An unfinished upload is deleted this long after it was last offered (21.3: 24 hours).
    upload_ttl_s: float = 24 * 3600.0
    #: Unacknowledged FILE_DATA frames per session (21.5).
    window_frames: int = WINDOW_FRAMES
    #: Seconds between two rounds of pruning.
    interval_s: float = 60.0
    #: Where the files go; None: `files/` beside the database (a temporary directory for `:memory:`).
    directory: Path | None = None


@dataclass(slots=True)
class FileRecord:
    """One row of the `files` table."""

    id: int
    sender: str
    sender_key: str
    room: str
    to: str
    to_key: str
    name: str
    size: int
    sha256: bytes
    mime: str
    flags: int
    created_ms: int
    touched_ms: int
    stored_ms: int | None

    def offered(self, listing: int = 0, request_id: int = 0) -> m.FileOffered:
        return m.FileOffered(
            self.id, self.room, self.to, self.sender, self.name, self.size, self.sha256, self.mime,
            self.flags, self.stored_ms or self.created_ms, listing, request_id,
        )  # fmt: skip

    def visible_to(self, key: str) -> bool:
        """A room's file is for its members; a file for one person only for that person and its sender."""
        return not self.to_key or key in (self.to_key, self.sender_key)


_COLUMNS = (
    "id, sender, sender_key, room, to_name, to_key, name, size, sha256, mime, flags, created_ms, "
    "touched_ms, stored_ms"
)


def _record(row: tuple[object, ...]) -> FileRecord:
    return FileRecord(*row)  # type: ignore[arg-type]


def human_size(size: int) -> str:
    """`4.2 KB`, `12 MB`: what a person reads in a log line or a refusal."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            if unit == "B":
                return f"{size} B"
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
        value /= 1024
    return f"{size} B"  # not reached


@dataclass(eq=False, slots=True)
class _Upload:
    """An upload held open in memory: its append-only descriptor and the digest so far."""

    record: FileRecord
    fd: int
    #: Bytes held: on disk, and in `unwritten` after them.
    received: int
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)
    hashed: int = 0
    #: The last bytes received, not written yet (at most about WRITE_BLOCK_BYTES).
    unwritten: bytearray = field(default_factory=bytearray)


#: FILE_DATA frames waiting in a session's link at most, per flush (see `Files.pump`).
FRAMES_PER_FLUSH = 32


@dataclass(eq=False, slots=True)
class FileSync:
    """A verified upload's last step, the one that waits on the disk: flush it (fsync), close it,
    give it its final name. `Files.sync_jobs` hands these to the transport, which runs `run` off
    the event loop (an fsync of 100 MB takes a disk tenths of a second: every chat line of the
    server would wait, 21.7) and then calls `Files.synced`."""

    record: FileRecord
    fd: int
    part: Path
    final: Path
    sid: bytes
    error: OSError | None = None

    def run(self) -> FileSync:
        """The blocking part (any thread). Never raises: an error is kept for `Files.synced`."""
        try:
            try:
                os.fsync(self.fd)
            finally:
                os.close(self.fd)
            os.replace(self.part, self.final)
        except OSError as exc:
            self.error = exc
        return self


@dataclass(eq=False, slots=True)
class _Stream:
    """One download under way to one session."""

    record: FileRecord
    fd: int
    offset: int


@dataclass(slots=True)
class _SessionStreams:
    """A session's downloads, and the link sequence numbers of its FILE_DATA frames not yet acknowledged."""

    streams: dict[int, _Stream] = field(default_factory=dict)
    in_flight: deque[int] = field(default_factory=deque)
    #: Downloads whose last frame is queued: (that frame's seq, the file) until it is acknowledged.
    finishing: list[tuple[int, FileRecord]] = field(default_factory=list)


class FileStore:
    """The `files` table and the directory of file bodies. Raises StoreError or OSError; the caller
    (`Files`) turns them into answers."""

    def __init__(self, store: Store, directory: Path | None) -> None:
        self.store = store
        self._directory = directory
        self._made = False

    @property
    def location(self) -> Path:
        """Where the files are kept, without making the directory (the banner shows it)."""
        if self._directory is None:
            if str(self.store.path) == ":memory:":
                self._directory = Path(tempfile.mkdtemp(prefix="labchat-files-"))
            else:
                self._directory = self.store.path.parent / "files"
        return self._directory

    @property
    def directory(self) -> Path:
        """Made (owner-only) on first use, so that a server that never sees a file makes no directory."""
        self._directory = self.location
        if not self._made:
            for warning in make_private_dir(self._directory):
                log.warning("%s", warning, extra={"markup": False})
            self._made = True
        return self._directory

    def part_path(self, file_id: int) -> Path:
        return self.directory / f"{file_id}.part"

    def final_path(self, file_id: int) -> Path:
        return self.directory / str(file_id)

    # ------------------------------------------------------------ rows

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[FileRecord]:
        return [_record(row) for row in self.store._read(f"SELECT {_COLUMNS} FROM files {sql}", params)]

    def get(self, file_id: int) -> FileRecord | None:
        if not 0 < file_id <= _MAX_I64:
            return None
        rows = self._query("WHERE id = ?", (file_id,))
        return rows[0] if rows else None

    def find_upload(self, sender_key: str, offer: m.FileOffer) -> FileRecord | None:
        """The sender's unfinished upload of the same file to the same place (21.3: resume it)."""
        rows = self._query(
            "WHERE stored_ms IS NULL AND sender_key = ? AND room = ? AND to_key = ? AND name = ? "
            "AND size = ? AND sha256 = ? ORDER BY id DESC LIMIT 1",
            (sender_key, offer.room, m.name_key(offer.to) if offer.to else "", offer.name, offer.size,
             offer.sha256),
        )  # fmt: skip
        return rows[0] if rows else None

    def counts(self, sender_key: str) -> tuple[int, int]:
        """(files kept or under way, unfinished uploads) of one user."""
        rows = self.store._read(
            "SELECT count(*), count(*) - count(stored_ms) FROM files WHERE sender_key = ?", (sender_key,)
        )
        kept, unfinished = rows[0]
        return (kept if isinstance(kept, int) else 0, unfinished if isinstance(unfinished, int) else 0)

    def used_bytes(self, sender_key: str, except_id: int = 0) -> int:
        rows = self.store._read(
            "SELECT coalesce(sum(size), 0) FROM files WHERE sender_key = ? AND id != ?",
            (sender_key, except_id),
        )
        value = rows[0][0]
        return value if isinstance(value, int) else 0

    def create(self, sender: str, offer: m.FileOffer, to: str, now_ms: int) -> FileRecord:
        to_key = m.name_key(to) if to else ""
        self.store._write([(
            "INSERT INTO files (sender, sender_key, room, to_name, to_key, name, size, sha256, mime, flags, "
            "created_ms, touched_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sender, m.name_key(sender), offer.room, to, to_key, offer.name, offer.size, offer.sha256,
             offer.mime, offer.flags & m.FILE_FOLDER, now_ms, now_ms),
        )])  # fmt: skip
        rows = self._query("WHERE sender_key = ? ORDER BY id DESC LIMIT 1", (m.name_key(sender),))
        return rows[0]

    def touch(self, file_id: int, now_ms: int) -> None:
        self.store._write([("UPDATE files SET touched_ms = ? WHERE id = ?", (now_ms, file_id))])

    def mark_stored(self, record: FileRecord, now_ms: int) -> None:
        self.store._write([("UPDATE files SET stored_ms = ? WHERE id = ?", (now_ms, record.id))])
        record.stored_ms = now_ms

    def delete(self, record: FileRecord) -> None:
        """The row, then its bytes: a crash between leaves an orphan file, never a row without one
        that looks kept (`sweep_orphans` removes the orphan later)."""
        self.store._write([("DELETE FROM files WHERE id = ?", (record.id,))])
        for path in (self.part_path(record.id), self.final_path(record.id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def kept_in(self, room: str, key: str, limit: int = MAX_LISTED) -> list[FileRecord]:
        rows = self._query(
            "WHERE room = ? AND stored_ms IS NOT NULL AND (to_key = '' OR to_key = ? OR sender_key = ?) "
            "ORDER BY id DESC LIMIT ?",
            (room, key, key, limit),
        )
        return rows[::-1]

    def kept_for(self, key: str, limit: int = MAX_LISTED) -> list[FileRecord]:
        rows = self._query(
            "WHERE to_key = ? AND stored_ms IS NOT NULL ORDER BY id DESC LIMIT ?", (key, limit)
        )
        return rows[::-1]

    def expired(self, stored_before_ms: int, touched_before_ms: int, limit: int) -> list[FileRecord]:
        return self._query(
            "WHERE (stored_ms IS NOT NULL AND stored_ms < ?) OR (stored_ms IS NULL AND touched_ms < ?) "
            "ORDER BY id LIMIT ?",
            (stored_before_ms, touched_before_ms, limit),
        )


class Files:
    """Section 21 for the relay: the relay dispatches the file kinds here and calls the hooks
    (`entered_room`, `logged_in`, `pump`, `forget`); this part answers on the relay's sessions."""

    def __init__(self, relay: Relay, policy: FilePolicy) -> None:
        self.relay = relay
        self.policy = policy
        self.disk = FileStore(relay.store, policy.directory)
        self._uploads: dict[int, _Upload] = {}
        #: Verified uploads whose data is being flushed to disk, by file id: a resend of their
        #: chunks is held data, a cancel crosses the end.
        self._syncing: dict[int, FileSync] = {}
        self._sync_jobs: list[FileSync] = []
        #: False (sans-I/O use, tests): a verified upload is flushed and renamed at once, inline.
        #: True (the transport): it is handed out by `sync_jobs`, finished by `synced`.
        self.defer_sync = False
        #: Sessions whose downloads `pump` held back to FRAMES_PER_FLUSH: `pump_waiting` goes on.
        self.waiting: set[bytes] = set()
        #: Downloads by session id. Non-empty only while a download is under way.
        self.streaming: dict[bytes, _SessionStreams] = {}
        #: Files deleted by retention since start (for the log and tests).
        self.pruned = 0

    # ------------------------------------------------------------ dispatch

    def dispatch(self, sess: Session, message: FileRequest, now: float) -> None:
        try:
            if isinstance(message, m.FileOffer):
                self._on_offer(sess, message, now)
            elif isinstance(message, m.FileChunk):
                self._on_chunk(sess, message, now)
            elif isinstance(message, m.FileGet):
                self._on_get(sess, message, now)
            elif isinstance(message, m.FileCancel):
                self._on_cancel(sess, message)
            elif isinstance(message, m.ListFiles):
                self._on_list(sess, message, now)
        except StoreError as exc:
            log.warning(_("files: %s"), exc)
            if isinstance(message, (m.FileOffer, m.ListFiles)):
                self._done(sess, message.request_id, ErrorCode.INTERNAL, "the server cannot store files now")
            else:
                self._state(sess, m.FileState(message.file_id, 0, 0, ErrorCode.INTERNAL, "server error"))

    def refuse_undecodable(self, sess: Session, kind: int, body: bytes, exc: DecodeError) -> None:
        """A FILE_OFFER or FILES that does not decode is still answered: its request_id comes first.
        An over-long name is a name problem (BAD_FILE_NAME), the rest BAD_MESSAGE."""
        if len(body) < 4:
            return
        text = str(exc)
        code = ErrorCode.BAD_FILE_NAME if "file name" in text else exc.code
        if code == ErrorCode.BAD_FILE_NAME:
            text = f"file name refused: it must be 1-{m.MAX_FILE_NAME_BYTES} bytes"
        self._done(sess, int.from_bytes(body[:4], "big"), code, text)

    # ------------------------------------------------------------ helpers

    def _send(self, sess: Session, message: m.Message) -> None:
        self.relay._send(sess, message)

    def _done(self, sess: Session, request_id: int, code: int = 0, text: str = "") -> None:
        self._send(sess, m.RequestDone(request_id, code, 0, truncate_utf8(text, m.MAX_NOTICE_BYTES)))

    def _state(self, sess: Session, state: m.FileState) -> None:
        self._send(sess, state)

    def _no_such_file(self, sess: Session, file_id: int, text: str = "no such file") -> None:
        self._state(sess, m.FileState(file_id, 0, 0, ErrorCode.NO_SUCH_FILE, text))

    def _kept(self, record: FileRecord, now_ms: int) -> bool:
        return record.stored_ms is not None and record.stored_ms + self.policy.retention_s * 1000 > now_ms

    def _wants_files(self, sess: Session) -> bool:
        """Both ends speak section 21: the session's LOGIN and this server's capabilities."""
        return bool(sess.caps & self.relay.config.capabilities & m.CAP_FILES)

    # ------------------------------------------------------------ offers and uploads (21.3)

    def _offer_refusal(self, sess: Session, offer: m.FileOffer, now: float) -> tuple[ErrorCode, str] | None:
        """Why an offer is refused before any byte is sent, in 21.3's order, or None."""
        assert sess.user is not None
        key = m.name_key(sess.user)
        room = sess.rooms.get(offer.room)
        if room is None:
            return ErrorCode.NO_SUCH_ROOM, f"you are not in room {offer.room}"
        if offer.to and not (
            m.name_key(offer.to) in self.relay.online_by_key or self.relay.store.get_account(offer.to)
        ):
            return ErrorCode.NO_SUCH_USER, f"there is no user {offer.to}"
        problem = m.file_name_problem(offer.name)
        if problem is not None:
            return ErrorCode.BAD_FILE_NAME, f"file name refused: {problem}"
        policy = self.policy
        if offer.size > policy.max_file_bytes:
            return ErrorCode.FILE_TOO_LARGE, (
                f"{offer.name} is {human_size(offer.size)}; this server takes files up to "
                f"{human_size(policy.max_file_bytes)}"
            )
        if not offer.to:  # the room's rules for messages apply to offers made to it
            now_ms = int(now * 1000)
            speak = room.check_speak(key, now_ms)
            if speak is not None:
                return speak
            # Quiet mode (20.5): the room hears its teachers only, and so it takes their files only.
            if room.quiet(now_ms) and not may(Act.SPEAK_WHEN_QUIET, room.member_role(key)):
                return ErrorCode.QUIET, f"{room.name} is in quiet mode: offer the file when it ends"
        return None

    def _on_offer(self, sess: Session, offer: m.FileOffer, now: float) -> None:
        assert sess.user is not None
        if not self.relay._take_token(sess, now):
            self._done(sess, offer.request_id, ErrorCode.RATE_LIMITED, "too many requests: wait a moment")
            return
        refusal = self._offer_refusal(sess, offer, now)
        if refusal is not None:
            self._done(sess, offer.request_id, refusal[0], refusal[1])
            return
        key, now_ms = m.name_key(sess.user), int(now * 1000)
        record = self.disk.find_upload(key, offer)
        used = self.disk.used_bytes(key, record.id if record else 0)
        if used + offer.size > self.policy.quota_bytes:
            self._done(sess, offer.request_id, ErrorCode.QUOTA, (
                f"your files on this server would take {human_size(used + offer.size)}; the quota is "
                f"{human_size(self.policy.quota_bytes)} (files are deleted "
                f"{self.policy.retention_s / DAY_S:g} days after they were sent)"
            ))  # fmt: skip
            return
        if record is None:
            files, uploads = self.disk.counts(key)
            if files >= MAX_FILES_PER_USER or uploads >= MAX_UPLOADS_PER_USER:
                self._done(sess, offer.request_id, ErrorCode.QUOTA, (
                    f"you have {uploads} unfinished uploads (at most {MAX_UPLOADS_PER_USER}): finish or "
                    "cancel one first" if uploads >= MAX_UPLOADS_PER_USER else
                    f"you have {files} files on this server, the most one user may keep"
                ))  # fmt: skip
                return
        to = self._recipient_name(offer.to) if offer.to else ""
        if record is None:
            record = self.disk.create(sess.user, offer, to, now_ms)
            log.debug("%s starts uploading %s (%s, file %d)", sess.user, record.name,
                      human_size(record.size), record.id)  # fmt: skip
        else:
            self.disk.touch(record.id, now_ms)
        if record.id in self._syncing:  # every byte is here, being flushed: "stored" follows
            self._state(sess, m.FileState(record.id, offer.request_id, record.size, 0, ""))
            return
        try:
            upload = self._open_upload(record)
        except OSError as exc:
            log.warning(_("files: cannot write %s: %s"), self.disk.part_path(record.id), exc)
            self.disk.delete(record)
            self._done(sess, offer.request_id, ErrorCode.INTERNAL, "the server cannot store files now")
            return
        self._state(sess, m.FileState(record.id, offer.request_id, upload.received, 0, ""))
        if upload.received >= record.size:
            self._finish(sess, upload, now)

    def _recipient_name(self, to: str) -> str:
        """The recipient's name as it is spelled (the account's, or the online user's)."""
        online = self.relay.online_by_key.get(m.name_key(to))
        if online is not None and online.user is not None:
            return online.user
        account = self.relay.store.get_account(to)
        return account.name if account is not None else to

    def _open_upload(self, record: FileRecord) -> _Upload:
        """The upload in memory, opened from its partial file if this process has not seen it yet
        (a resume after a restart): it holds what the file on disk holds."""
        upload = self._uploads.get(record.id)
        if upload is not None:
            return upload
        while len(self._uploads) >= MAX_OPEN_UPLOADS:  # the least recently written goes
            self._close_upload(next(iter(self._uploads.values())))
        path = self.disk.part_path(record.id)
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        fd = os.open(path, flags, 0o600)
        try:
            received = os.fstat(fd).st_size
            if received > record.size:  # more than offered: not this file; start over
                os.ftruncate(fd, 0)
                received = 0
        except OSError:
            os.close(fd)
            raise
        upload = self._uploads[record.id] = _Upload(record, fd, received)
        return upload

    def _close_upload(self, upload: _Upload, *, keep: bool = True) -> None:
        """Close the partial file (`keep`: with what is held in memory written to it first)."""
        self._uploads.pop(upload.record.id, None)
        with contextlib.suppress(OSError):
            if keep:
                self._write_out(upload)
        with contextlib.suppress(OSError):
            os.close(upload.fd)

    @staticmethod
    def _write_out(upload: _Upload) -> None:
        """Write what is held in memory to the partial file. Raises OSError (a full disk): what
        was written stays written, the rest stays held."""
        block = upload.unwritten
        written = 0
        try:
            with memoryview(block) as view:
                while written < len(view):
                    written += os.write(upload.fd, view[written:])
        finally:
            del block[:written]

    def _on_chunk(self, sess: Session, chunk: m.FileChunk, now: float) -> None:
        assert sess.user is not None
        upload = self._uploads.get(chunk.file_id)
        if upload is None:
            if chunk.file_id in self._syncing:
                return  # a resend of a file whose every byte is here and being flushed
            record = self.disk.get(chunk.file_id)
            ours = record is not None and record.sender_key == m.name_key(sess.user)
            if ours and record is not None and record.stored_ms is not None:
                return  # a resend after the file was stored: it has every byte already
            if record is None or record.stored_ms is not None or not ours:
                self._no_such_file(sess, chunk.file_id, "no such upload: offer the file again")
                return
            try:
                upload = self._open_upload(record)
            except OSError as exc:
                log.warning(_("files: cannot write %s: %s"), self.disk.part_path(record.id), exc)
                self._no_such_file(sess, chunk.file_id, "the server cannot store files now")
                return
        elif upload.record.sender_key != m.name_key(sess.user):
            self._no_such_file(sess, chunk.file_id, "no such upload")
            return
        else:  # most recently written last: `_open_upload` closes from the front
            self._uploads[chunk.file_id] = self._uploads.pop(chunk.file_id)
        start, end = chunk.offset, chunk.offset + len(chunk.data)
        if end <= upload.received:
            return  # a resend of what is held
        if start > upload.received:  # a gap: tell the sender where to go on from
            self._state(sess, m.FileState(upload.record.id, 0, upload.received, 0, ""))
            return
        data = chunk.data[upload.received - start :]
        if upload.received + len(data) > upload.record.size:
            self._fail_upload(sess, upload, "more bytes than offered")
            return
        try:
            self._append(upload, data)
        except OSError as exc:
            log.warning(_("files: cannot write %s: %s"), self.disk.part_path(upload.record.id), exc)
            self._close_upload(upload, keep=False)  # what reached the disk stays: the sender resumes
            self._state(sess, m.FileState(upload.record.id, 0, 0, ErrorCode.INTERNAL,
                                          "the server cannot store files now"))  # fmt: skip
            return
        if upload.received >= upload.record.size:
            self._finish(sess, upload, now)

    def _append(self, upload: _Upload, data: bytes) -> None:
        start = upload.received
        upload.unwritten += data
        upload.received += len(data)
        if len(upload.unwritten) >= WRITE_BLOCK_BYTES:
            self._write_out(upload)
        if upload.hashed < start:
            self._rehash(upload, start, REHASH_STEP_BYTES)
        if upload.hashed == start:
            upload.hasher.update(data)
            upload.hashed = upload.received

    @staticmethod
    def _rehash(upload: _Upload, limit: int, step: int) -> None:
        """Digest the partial file from where the digest stands, up to `limit`, at most `step` bytes."""
        Files._write_out(upload)
        end = min(limit, upload.hashed + step)
        os.lseek(upload.fd, upload.hashed, os.SEEK_SET)  # O_APPEND: writes still go to the end
        while upload.hashed < end:
            block = os.read(upload.fd, min(64 * 1024, end - upload.hashed))
            if not block:
                raise OSError(f"file {upload.record.id}: shorter on disk than recorded")
            upload.hasher.update(block)
            upload.hashed += len(block)

    def _fail_upload(self, sess: Session, upload: _Upload, why: str) -> None:
        record = upload.record
        self._close_upload(upload, keep=False)
        self.disk.delete(record)
        log.info(_("%s's upload of %s failed: %s"), record.sender, record.name, why)
        self._state(sess, m.FileState(record.id, 0, 0, ErrorCode.BAD_CHECKSUM,
                                      f"{record.name}: {why}; offer it again"))  # fmt: skip

    def _finish(self, sess: Session, upload: _Upload, now: float) -> None:
        """Every byte is here: check the digest of the whole, keep the file under its final name
        (data on disk first, then the rename), and offer it (21.4)."""
        record = upload.record
        try:
            self._write_out(upload)
            self._rehash(upload, upload.received, upload.received)
            if upload.hasher.digest() != record.sha256:
                self._fail_upload(sess, upload, "the SHA-256 of what arrived does not match the offer")
                return
            if self.defer_sync:
                self._uploads.pop(record.id, None)  # the descriptor is the job's now
                job = FileSync(record, upload.fd, self.disk.part_path(record.id),
                               self.disk.final_path(record.id), sess.sid)  # fmt: skip
                self._syncing[record.id] = job
                self._sync_jobs.append(job)
                return
            os.fsync(upload.fd)
            self._close_upload(upload)
            os.replace(self.disk.part_path(record.id), self.disk.final_path(record.id))
        except OSError as exc:
            log.warning(_("files: cannot keep file %d: %s"), record.id, exc)
            self._close_upload(upload, keep=False)
            self.disk.delete(record)
            self._state(sess, m.FileState(record.id, 0, 0, ErrorCode.INTERNAL,
                                          "the server cannot store files now"))  # fmt: skip
            return
        self._stored(record, sess, now)

    def _stored(self, record: FileRecord, sess: Session | None, now: float) -> None:
        self.disk.mark_stored(record, int(now * 1000))
        if sess is not None:
            self._state(sess, m.FileState(record.id, 0, record.size, 0, "stored"))
        self._offer_stored(record, sess)

    def sync_jobs(self) -> list[FileSync]:
        """Verified uploads to flush off the event loop (`defer_sync`): run each, then `synced`."""
        jobs, self._sync_jobs = self._sync_jobs, []
        return jobs

    def finish_syncs(self, now: float) -> None:
        """At shutdown, once the transport's file thread has stopped: flush the verified uploads
        not handed out yet, and keep every flushed file (its record says stored), as `synced` would."""
        for job in self.sync_jobs():
            job.run()
        for job in list(self._syncing.values()):
            self.synced(job, now)

    def synced(self, job: FileSync, now: float) -> None:
        """A `FileSync` has run: the file is kept and offered, or, if the disk failed, dropped
        with one line to its sender (who offers it again)."""
        self._syncing.pop(job.record.id, None)
        record = self.disk.get(job.record.id)
        if record is None:
            return  # deleted meanwhile (retention, an account removed): nothing to offer
        sess = self.relay.sessions.get(job.sid)
        if sess is not None and sess.user is None:
            sess = None
        if job.error is not None:
            log.warning(_("files: cannot keep file %d: %s"), record.id, job.error)
            with contextlib.suppress(OSError):
                self.disk.delete(record)
            if sess is not None:
                self._state(sess, m.FileState(record.id, 0, 0, ErrorCode.INTERNAL,
                                              "the server cannot store files now"))  # fmt: skip
            return
        self._stored(record, sess, now)

    def _offer_stored(self, record: FileRecord, sender: Session | None) -> None:
        """FILE_OFFERED (live) to the room's members online, the sender among them (its client shows
        its own file in the room, as the others see it), or to the one recipient and the sender."""
        body = encode_message(record.offered())
        targets: list[Session] = []
        if record.to_key:
            target = self.relay.online_by_key.get(record.to_key)
            targets = [t for t in dict.fromkeys((target, sender)) if t is not None]
            where = f"{record.to} (from {record.room})"
        else:
            room = self.relay.rooms.get(record.room)
            for sid in room.members.values() if room is not None else ():
                member = self.relay.sessions.get(sid)
                if member is not None:
                    targets.append(member)
            where = record.room
        count = 0
        for target in targets:
            if self._wants_files(target):
                target.link.send(m.Kind.FILE_OFFERED, body)
                self.relay._dirty.add(target)
                count += target is not sender
        log.info(_("%s offered %s (%s) to %s  [dim](file %d, told %d)[/]"), _escape(record.sender),
                 _escape(record.name), human_size(record.size), _escape(where), record.id, count)  # fmt: skip

    # ------------------------------------------------------------ listings (21.4)

    def entered_room(self, sess: Session, room: str, now: float) -> None:
        """A session entered `room` (login or JOIN): every file of the room it may see (listing 1)."""
        if not self._wants_files(sess) or sess.user is None:
            return
        try:
            records = self.disk.kept_in(room, m.name_key(sess.user))
        except StoreError as exc:
            log.warning(_("files: %s"), exc)
            return
        now_ms = int(now * 1000)
        for record in records:
            if self._kept(record, now_ms):
                self._send(sess, record.offered(listing=1))

    def logged_in(self, sess: Session, now: float) -> None:
        """After login: the files offered to this user alone from rooms it is not in (its rooms'
        listings carried the others)."""
        if not self._wants_files(sess) or sess.user is None:
            return
        try:
            records = self.disk.kept_for(m.name_key(sess.user))
        except StoreError as exc:
            log.warning(_("files: %s"), exc)
            return
        now_ms = int(now * 1000)
        for record in records:
            if record.room not in sess.rooms and self._kept(record, now_ms):
                self._send(sess, record.offered(listing=1))

    def _on_list(self, sess: Session, req: m.ListFiles, now: float) -> None:
        assert sess.user is not None
        if not self.relay._take_token(sess, now):
            self._done(sess, req.request_id, ErrorCode.RATE_LIMITED, "too many requests: wait a moment")
            return
        if req.room not in sess.rooms:
            self._done(sess, req.request_id, ErrorCode.NO_SUCH_ROOM, f"you are not in room {req.room}")
            return
        now_ms = int(now * 1000)
        for record in self.disk.kept_in(req.room, m.name_key(sess.user)):
            if self._kept(record, now_ms):
                self._send(sess, record.offered(listing=1, request_id=req.request_id))
        self._done(sess, req.request_id)

    # ------------------------------------------------------------ downloads (21.5)

    def _on_get(self, sess: Session, get: m.FileGet, now: float) -> None:
        assert sess.user is not None
        record = self.disk.get(get.file_id)
        key = m.name_key(sess.user)
        if (
            record is None
            or not self._kept(record, int(now * 1000))
            or not record.visible_to(key)
            or (not record.to_key and record.room not in sess.rooms and record.sender_key != key)
        ):
            self._no_such_file(sess, get.file_id)
            return
        if get.offset > record.size:
            self._no_such_file(sess, get.file_id, f"{record.name} has only {record.size} bytes")
            return
        replaced = self._stop_stream(sess, record.id)  # a new FILE_GET replaces the stream under way
        state = self.streaming.get(sess.sid)
        if not replaced and state is not None and len(state.streams) >= MAX_STREAMS_PER_SESSION:
            text = f"at most {MAX_STREAMS_PER_SESSION} downloads at once"
            self._state(sess, m.FileState(record.id, 0, 0, ErrorCode.RATE_LIMITED, text))
            return
        path = self.disk.final_path(record.id)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError as exc:
            log.warning(_("files: file %d (%s) is gone from disk: %s"), record.id, record.name, exc)
            self._no_such_file(sess, record.id, f"{record.name} is no longer kept")
            return
        try:
            size = os.fstat(fd).st_size
            if size != record.size:
                raise OSError(f"{size} bytes on disk, {record.size} expected")
            os.lseek(fd, get.offset, os.SEEK_SET)
        except OSError as exc:
            os.close(fd)
            log.warning(_("files: file %d (%s) is damaged on disk: %s"), record.id, record.name, exc)
            self._no_such_file(sess, record.id, f"{record.name} is no longer kept")
            return
        streams = self.streaming.setdefault(sess.sid, _SessionStreams())
        streams.streams[record.id] = _Stream(record, fd, get.offset)
        self.pump(sess)

    def pump(self, sess: Session) -> None:
        """Queue FILE_DATA while the session has fewer than `window_frames` of them unacknowledged,
        round robin over its downloads. Called on FILE_GET and whenever acknowledgements arrive."""
        state = self.streaming.get(sess.sid)
        if state is None:
            return
        link, in_flight = sess.link, state.in_flight
        # FILE_DATA rides the link's bulk queue (21.7), which counts our frames not yet acknowledged.
        pending: int | None = link.bulk_pending
        while in_flight and link.acked(in_flight[0]):
            in_flight.popleft()
        if state.finishing:
            still = []
            for seq, record in state.finishing:
                if (pending == 0) if pending is not None else link.acked(seq):
                    log.info(_("%s downloaded %s"), _escape(sess.user or ""), _escape(record.name))
                else:
                    still.append((seq, record))
            state.finishing = still
        # The link's delay-based bulk window may open past ours on a fast path: follow it (21.7).
        window = max(self.policy.window_frames, link.bulk_limit)
        budget = window - (len(in_flight) if pending is None else pending)
        # At most FRAMES_PER_FLUSH waiting in the link: a window sealed in one flush holds the event
        # loop for milliseconds, and every chat line arriving meanwhile waits (21.7). The rest goes
        # at the next flush (`waiting`; the transport makes one soon, once it has read its socket).
        burst = min(budget, FRAMES_PER_FLUSH - link.bulk_queued)
        if burst < budget:
            self.waiting.add(sess.sid)
        budget = burst
        queued = False
        while budget > 0 and state.streams:
            for stream in list(state.streams.values()):
                if budget <= 0:
                    break
                if self._send_chunk(sess, state, stream) is None:
                    continue
                queued = True
                budget -= 1
        if queued:
            self.relay._dirty.add(sess)
        if not state.streams and not in_flight and not state.finishing:
            del self.streaming[sess.sid]

    def pump_due(self) -> bool:
        """Some session held back by `pump` has room in its link for more now: a flush soon sends
        it. (A link whose queue is still full waits for its acknowledgements or its pacing timer.)"""
        sessions = self.relay.sessions
        for sid in self.waiting:
            sess = sessions.get(sid)
            if sess is not None and sess.link.bulk_queued < FRAMES_PER_FLUSH:
                return True
        return False

    def pump_waiting(self) -> None:
        """`pump` again every session it held back (`waiting`): each flush of the relay does, and
        the transport makes the next flush soon while any is waiting, after reading its socket (so
        chat that arrived meanwhile went first)."""
        waiting, self.waiting = self.waiting, set()
        for sid in waiting:
            sess = self.relay.sessions.get(sid)
            if sess is not None:
                self.pump(sess)

    @staticmethod
    def _send_bulk(sess: Session, kind: int, body: bytes) -> int:
        """Queue a file frame behind chat (21.7). The link numbers bulk frames only as they leave
        (0 here) and counts them itself (`bulk_pending`)."""
        return sess.link.send(kind, body, bulk=True)

    def _send_chunk(self, sess: Session, state: _SessionStreams, stream: _Stream) -> int | None:
        record = stream.record
        want = min(m.MAX_CHUNK_BYTES, record.size - stream.offset)
        try:
            data = os.read(stream.fd, want) if want > 0 else b""
            if len(data) < want:
                raise OSError("shorter on disk than recorded")
        except OSError as exc:
            log.warning(_("files: cannot read file %d (%s): %s"), record.id, record.name, exc)
            self._stop_stream(sess, record.id)
            self._no_such_file(sess, record.id, f"{record.name} is no longer kept")
            return None
        if not data:  # an empty file, or one asked from its end: nothing to send
            self._stop_stream(sess, record.id)
            return None
        body = encode_message(m.FileData(record.id, stream.offset, data))
        seq = self._send_bulk(sess, m.Kind.FILE_DATA, body)
        if seq:
            state.in_flight.append(seq)
        stream.offset += len(data)
        if stream.offset >= record.size:
            self._stop_stream(sess, record.id)
            state.finishing.append((seq, record))
        return seq

    def _stop_stream(self, sess: Session, file_id: int) -> bool:
        state = self.streaming.get(sess.sid)
        stream = state.streams.pop(file_id, None) if state is not None else None
        if stream is None:
            return False
        with contextlib.suppress(OSError):
            os.close(stream.fd)
        return True

    def forget(self, sess: Session) -> None:
        """The session ended or was replaced: its downloads stop (the client resumes them)."""
        state = self.streaming.pop(sess.sid, None)
        for stream in state.streams.values() if state is not None else ():
            with contextlib.suppress(OSError):
                os.close(stream.fd)

    # ------------------------------------------------------------ cancel (21.3, 21.5)

    def _on_cancel(self, sess: Session, cancel: m.FileCancel) -> None:
        assert sess.user is not None
        if self._stop_stream(sess, cancel.file_id):
            return
        upload = self._uploads.get(cancel.file_id)
        record = upload.record if upload is not None else self.disk.get(cancel.file_id)
        if (record is None or record.stored_ms is not None or record.sender_key != m.name_key(sess.user)
                or record.id in self._syncing):
            return  # nothing of ours under way: a cancel crossing the end is no error
        if upload is not None:
            self._close_upload(upload, keep=False)
        self.disk.delete(record)
        log.info(_("%s cancelled the upload of %s"), sess.user, _escape(record.name))

    # ------------------------------------------------------------ retention

    def prune(self, now: float, batch: int = PRUNE_BATCH_FILES) -> int:
        """Delete one batch of stored files past retention and uploads left unfinished too long;
        how many (0: nothing left to delete). Raises StoreError."""
        now_ms = int(now * 1000)
        records = self.disk.expired(
            now_ms - int(self.policy.retention_s * 1000), now_ms - int(self.policy.upload_ttl_s * 1000), batch
        )
        for record in records:
            if record.id in self._syncing:
                continue  # being flushed: stored in a moment, or dropped by `synced`
            upload = self._uploads.get(record.id)
            if upload is not None:
                self._close_upload(upload, keep=False)
            try:
                self.disk.delete(record)
            except OSError as exc:  # open elsewhere (Windows): the next round tries again
                log.debug("files: cannot delete file %d yet: %s", record.id, exc)
        self.pruned += len(records)
        return len(records)

    def close(self) -> None:
        for upload in list(self._uploads.values()):
            self._close_upload(upload)
        for state in self.streaming.values():
            for stream in state.streams.values():
                with contextlib.suppress(OSError):
                    os.close(stream.fd)
        self.streaming.clear()


async def prune_files_regularly(
    files: Files, clock: Callable[[], float], pruned: asyncio.Event | None = None
) -> None:
    """Every `interval_s` (and once at start): delete expired files in batches (`prune_in_rounds`)."""
    interval = files.policy.interval_s

    def failed(exc: BaseException) -> None:
        log.warning(_("files: %s; retrying every %g s"), exc, interval)

    def done(total: int) -> None:
        log.info(_("files: deleted %d expired file(s) and unfinished upload(s)"), total)

    await prune_in_rounds(files.prune, clock, interval, (StoreError, sqlite3.Error), failed, done, pruned)


def _escape(text: str) -> str:
    """Rich markup off in a user's file name (the relay's log lines use markup)."""
    return text.replace("[", "\\[")
