"""`labchat-admin export` / `import`: a server's durable state as a versioned JSON-lines file.

What the file holds: every account (name, salt, scrypt hash and parameters, admin flag), every room
record (topic, modes, key, announcement, the highest seq ever handed out), roles, sanctions, room
lists (memberships), invitations, and every room's history in seq order. What it does not hold:
private messages waiting for an offline recipient, offered files, classroom queues and polls, and
which announcement each account has seen: they are short-lived or live beside the database.

Why JSON lines, one record a line, in a fixed section order (header, accounts, rooms, roles,
sanctions, members, invites, messages grouped by room in seq order, end):
- it streams both ways: export walks SQLite cursors and import reads a line at a time, so a history
  of millions of lines never sits in memory; the cluster import can publish a room's messages in
  order as they come;
- a bad line is reported with its number, and the closing `end` record (with the counts) tells a
  complete file from a truncated copy;
- the `version` in the header lets a later labchat read an older file, and refuse a newer one.

Export reads one consistent snapshot (a single read transaction: SQLite's WAL gives it while the
server keeps writing) and writes to `FILE.partial`, renamed to FILE only when complete. A name ending
in `.gz` is compressed. Import into SQLite checks the whole file as it goes and writes everything in
one transaction: a bad line anywhere leaves the database as it was (nothing half-imported).

The schema knowledge here mirrors store.py's tables (`SCHEMA_VERSION` 8); a schema change that adds
durable state should add a record type here too (and bump `VERSION` if old readers must refuse it).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from ..i18n import _
from ..protocol.messages import is_valid_name, is_valid_room, name_key
from .store import ROLE_NAMES, SANCTION_KINDS, Store, StoreError

#: The header's `format` and the file version this labchat writes and reads.
FORMAT = "labchat-export"
VERSION = 1
#: The longest line a reader accepts: far above any real record (a message is at most a few KB), and
#: a bound on what one bad line can make the reader hold.
MAX_LINE_BYTES = 1 << 20
#: Record types in the order a file holds them; `end` closes it.
SECTIONS = ("account", "room", "role", "sanction", "member", "invite", "message")
#: Rows per executemany when importing into SQLite.
_BATCH = 2000


class ExportFileError(Exception):
    """A file that is not a complete, well-formed export: `line` is where (1-based), `reason` why."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class AccountRow:
    name: str
    salt: bytes
    digest: bytes
    n: int
    r: int
    p: int
    admin: bool
    created_ms: int


@dataclass(frozen=True, slots=True)
class RoomRow:
    name: str
    creator: str
    topic: str
    modes: int
    key: str
    created_ms: int
    ann_id: int
    ann_text: str
    ann_by: str
    ann_ms: int
    #: The highest seq the room ever handed out (pruned or not): numbers never repeat after import.
    last_seq: int


@dataclass(frozen=True, slots=True)
class RoleRow:
    room: str
    account: str  # the account's name key
    role: str


@dataclass(frozen=True, slots=True)
class SanctionRow:
    room: str
    account: str
    kind: str
    until_ms: int | None
    by: str
    reason: str


@dataclass(frozen=True, slots=True)
class MemberRow:
    account: str
    room: str
    position: int


@dataclass(frozen=True, slots=True)
class InviteRow:
    room: str
    account: str


@dataclass(frozen=True, slots=True)
class MessageRow:
    room: str
    seq: int
    ts_ms: int
    user: str
    text: str
    flags: int
    msg_id: int


Record = AccountRow | RoomRow | RoleRow | SanctionRow | MemberRow | InviteRow | MessageRow


@dataclass
class Counts:
    """How many records of each type; the `end` record carries them."""

    account: int = 0
    room: int = 0
    role: int = 0
    sanction: int = 0
    member: int = 0
    invite: int = 0
    message: int = 0

    def add(self, record: Record) -> None:
        kind = _TYPE_OF[type(record)]
        setattr(self, kind, getattr(self, kind) + 1)

    def as_dict(self) -> dict[str, int]:
        return {kind: getattr(self, kind) for kind in SECTIONS}


_TYPE_OF: dict[type, str] = {
    AccountRow: "account", RoomRow: "room", RoleRow: "role", SanctionRow: "sanction",
    MemberRow: "member", InviteRow: "invite", MessageRow: "message",
}  # fmt: skip


def encode_record(record: Record) -> dict[str, Any]:
    """The JSON object of one record (one line of the file)."""
    kind = _TYPE_OF[type(record)]
    if isinstance(record, AccountRow):
        return {"type": kind, "name": record.name, "salt": record.salt.hex(), "hash": record.digest.hex(),
                "n": record.n, "r": record.r, "p": record.p, "admin": record.admin,
                "created_ms": record.created_ms}  # fmt: skip
    if isinstance(record, MessageRow):
        return {"type": kind, "room": record.room, "seq": record.seq, "ts": record.ts_ms,
                "user": record.user, "text": record.text, "flags": record.flags, "id": record.msg_id}
    out: dict[str, Any] = {"type": kind}
    for name in record.__slots__:
        out[name] = getattr(record, name)
    return out


# ---------------------------------------------------------------- reading (untrusted input)


def _int(obj: dict[str, Any], name: str, low: int = 0, high: int = 2**63 - 1) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(_("field {name!r} must be a whole number from {low} to {high}").format(
            name=name, low=low, high=high))
    return value


def _str(obj: dict[str, Any], name: str, *, allow_empty: bool = True) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or (not allow_empty and not value):
        raise ValueError(_("field {name!r} must be text").format(name=name))
    return value


def _hex(obj: dict[str, Any], name: str) -> bytes:
    value = _str(obj, name, allow_empty=False)
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValueError(_("field {name!r} must be hexadecimal").format(name=name)) from None


def _room(obj: dict[str, Any], name: str = "room") -> str:
    room = _str(obj, name)
    if not is_valid_room(room):
        raise ValueError(_("invalid room name {room!r}").format(room=room))
    return room


def decode_record(obj: dict[str, Any]) -> Record:
    """One record from its JSON object; ValueError (one line) if it is not a valid one."""
    kind = obj.get("type")
    if kind == "account":
        name = _str(obj, "name")
        if not is_valid_name(name):
            raise ValueError(_("invalid account name {name!r}").format(name=name))
        n = _int(obj, "n", 2, 2**30)
        if n & (n - 1):
            raise ValueError(_("field 'n' must be a power of two"))
        admin = obj.get("admin")
        if not isinstance(admin, bool):
            raise ValueError(_("field {name!r} must be true or false").format(name="admin"))
        return AccountRow(name, _hex(obj, "salt"), _hex(obj, "hash"), n, _int(obj, "r", 1, 1024),
                          _int(obj, "p", 1, 1024), admin, _int(obj, "created_ms"))
    if kind == "room":
        return RoomRow(_room(obj, "name"), _str(obj, "creator"), _str(obj, "topic"),
                       _int(obj, "modes", 0, 2**32 - 1), _str(obj, "key"), _int(obj, "created_ms"),
                       _int(obj, "ann_id"), _str(obj, "ann_text"), _str(obj, "ann_by"),
                       _int(obj, "ann_ms"), _int(obj, "last_seq"))
    if kind == "role":
        role = _str(obj, "role")
        if role not in ROLE_NAMES:
            raise ValueError(_("unknown role {role!r}").format(role=role))
        return RoleRow(_room(obj), _str(obj, "account", allow_empty=False), role)
    if kind == "sanction":
        sanction = _str(obj, "kind")
        if sanction not in SANCTION_KINDS:
            raise ValueError(_("unknown sanction {kind!r}").format(kind=sanction))
        until = None if obj.get("until_ms") is None else _int(obj, "until_ms")
        return SanctionRow(_room(obj), _str(obj, "account", allow_empty=False), sanction, until,
                           _str(obj, "by"), _str(obj, "reason"))
    if kind == "member":
        return MemberRow(_str(obj, "account", allow_empty=False), _room(obj), _int(obj, "position"))
    if kind == "invite":
        return InviteRow(_room(obj), _str(obj, "account", allow_empty=False))
    if kind == "message":
        return MessageRow(_room(obj), _int(obj, "seq", 1), _int(obj, "ts"), _str(obj, "user"),
                          _str(obj, "text"), _int(obj, "flags", 0, 2**32 - 1),
                          _int(obj, "id", 0, 2**64 - 1))
    raise ValueError(_("unknown record type {kind!r}").format(kind=kind))


@dataclass
class _ReaderState:
    section: int = -1
    counts: Counts = field(default_factory=Counts)
    account_keys: set[str] = field(default_factory=set)
    #: Every room record's last_seq: a message must belong to a room the file declares.
    rooms: dict[str, int] = field(default_factory=dict)
    finished_rooms: set[str] = field(default_factory=set)
    message_room: str | None = None
    message_seq: int = 0


def read_export(lines: Iterable[bytes]) -> Iterator[Record]:
    """The records of an export file, checked as they are read (streaming: constant memory apart
    from the account and room names).

    Raises:
        ExportFileError: the first thing wrong, with its line number: not JSON, an unknown or
            malformed record, a record out of section order, a room's messages out of seq order or
            split, a message of an undeclared room, a version this labchat does not read, or the
            file ending without its `end` record (truncated) or with counts that do not match.
    """
    state = _ReaderState()
    number = 0
    ended = False
    for number, raw in enumerate(lines, start=1):
        if ended:
            if raw.strip():
                raise ExportFileError(number, _("text after the end record"))
            continue
        if len(raw) > MAX_LINE_BYTES:
            raise ExportFileError(number, _("line longer than {limit} bytes").format(limit=MAX_LINE_BYTES))
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ExportFileError(number, _("not a JSON record ({reason})").format(reason=exc)) from None
        except RecursionError:
            raise ExportFileError(number, _("not a JSON record (nested too deeply)")) from None
        if not isinstance(obj, dict):
            raise ExportFileError(number, _("not a JSON object"))
        if number == 1:
            _check_header(obj)
            continue
        if obj.get("type") == "end":
            _check_end(number, obj, state.counts)
            ended = True
            continue
        try:
            record = decode_record(obj)
        except ValueError as exc:
            raise ExportFileError(number, str(exc)) from None
        _check_order(number, record, state)
        state.counts.add(record)
        yield record
    if number == 0:
        raise ExportFileError(1, _("the file is empty"))
    if not ended:
        raise ExportFileError(number + 1, _("the file ends without its end record: is it truncated?"))


def _check_header(obj: dict[str, Any]) -> None:
    if obj.get("format") != FORMAT:
        raise ExportFileError(1, _("not a labchat export (no {format!r} header)").format(format=FORMAT))
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ExportFileError(1, _("the header has no valid version"))
    if version > VERSION:
        raise ExportFileError(1, _("export version {version} is newer than this labchat reads ({ours}):"
                                   " upgrade labchat").format(version=version, ours=VERSION))


def _check_end(number: int, obj: dict[str, Any], counts: Counts) -> None:
    declared = obj.get("counts")
    if declared != counts.as_dict():
        raise ExportFileError(number, _("the end record's counts {declared} do not match the records"
                                        " read {found}").format(declared=declared, found=counts.as_dict()))


def _check_order(number: int, record: Record, state: _ReaderState) -> None:
    section = SECTIONS.index(_TYPE_OF[type(record)])
    if section < state.section:
        raise ExportFileError(number, _("a {kind} record after the {later} records").format(
            kind=SECTIONS[section], later=SECTIONS[state.section]))
    state.section = section
    if isinstance(record, AccountRow):
        key = name_key(record.name)
        if key in state.account_keys:
            raise ExportFileError(number, _("account {name!r} appears twice").format(name=record.name))
        state.account_keys.add(key)
    elif isinstance(record, RoomRow):
        if record.name in state.rooms:
            raise ExportFileError(number, _("room {room!r} appears twice").format(room=record.name))
        state.rooms[record.name] = record.last_seq
    elif isinstance(record, MessageRow):
        last_seq = state.rooms.get(record.room)
        if last_seq is None:
            raise ExportFileError(number, _("a message of room {room!r}, which has no room record").format(
                room=record.room))
        if record.room != state.message_room:
            if record.room in state.finished_rooms:
                raise ExportFileError(number, _("the messages of room {room!r} are not together").format(
                    room=record.room))
            if state.message_room is not None:
                state.finished_rooms.add(state.message_room)
            state.message_room, state.message_seq = record.room, 0
        if record.seq <= state.message_seq:
            raise ExportFileError(number, _("seq {seq} of room {room!r} after seq {previous}").format(
                seq=record.seq, room=record.room, previous=state.message_seq))
        if record.seq > last_seq:
            text = _("seq {seq} of room {room!r} is above the room's last_seq {last}")
            raise ExportFileError(number, text.format(seq=record.seq, room=record.room, last=last_seq))
        state.message_seq = record.seq


def open_export(path: Path) -> IO[bytes]:
    """The file to read, decompressed if its name ends in .gz.

    Raises:
        StoreError: it cannot be opened (one line).
    """
    try:
        return cast(IO[bytes], gzip.open(path, "rb")) if path.suffix == ".gz" else path.open("rb")
    except OSError as exc:
        text = _("cannot read {path}: {reason}").format(path=path, reason=exc.strerror or exc)
        raise StoreError(text) from None


def lines_of(stream: IO[bytes]) -> Iterator[bytes]:
    """Lines of at most MAX_LINE_BYTES + 1 bytes each, read as needed; a read error is one line."""
    try:
        while line := stream.readline(MAX_LINE_BYTES + 1):
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                yield line  # the reader refuses it by its length
                while (rest := stream.readline(MAX_LINE_BYTES + 1)) and not rest.endswith(b"\n"):
                    pass
                continue
            yield line
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise StoreError(_("cannot read the export: {reason}").format(reason=exc)) from None


def check_file(path: Path) -> Counts:
    """Read the whole file through `read_export` (the first pass of a cluster import): its counts.

    Raises:
        ExportFileError, StoreError.
    """
    counts = Counts()
    with open_export(path) as stream:
        for record in read_export(lines_of(stream)):
            counts.add(record)
    return counts


# ---------------------------------------------------------------- export


def export_database(db_path: Path, out_path: Path, now_ms: int | None = None) -> Counts:
    """Write the database at `db_path` as an export file at `out_path`; returns what it wrote.

    Raises:
        StoreError: the database does not exist or cannot be read, or the file cannot be written.
    """
    if not db_path.exists():
        raise StoreError(_("no database at {path}").format(path=db_path))
    Store(db_path).close()  # brings an older schema up to date, and fails in one line on a bad file
    partial = out_path.with_name(out_path.name + ".partial")
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(_("cannot read {path}: {reason}").format(path=db_path, reason=exc)) from None
    counts = Counts()
    try:
        with contextlib.ExitStack() as stack:
            raw = stack.enter_context(partial.open("wb"))
            os.chmod(partial, 0o600)  # it holds password hashes: owner-only, as the database is
            out: IO[bytes] = raw
            if out_path.suffix == ".gz":
                out = cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)))
            db.execute("BEGIN")  # one snapshot for every table, while a server may keep writing
            header = {"format": FORMAT, "version": VERSION, "created_ms": now_ms or int(time.time() * 1000),
                      "source": "sqlite"}
            out.write(_line(header))
            for record in _database_records(db):
                counts.add(record)
                out.write(_line(encode_record(record)))
            out.write(_line({"type": "end", "counts": counts.as_dict()}))
            db.execute("COMMIT")
        partial.replace(out_path)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise StoreError(_("cannot read {path}: {reason}").format(path=db_path, reason=exc)) from None
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise StoreError(_("cannot write {path}: {reason}").format(
            path=out_path, reason=exc.strerror or exc)) from None
    finally:
        db.close()
    return counts


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def _rows(db: sqlite3.Connection, sql: str) -> Iterator[tuple[Any, ...]]:
    cursor = db.execute(sql)
    while batch := cursor.fetchmany(_BATCH):
        yield from batch


def _database_records(db: sqlite3.Connection) -> Iterator[Record]:
    for name, salt, digest, n, r, p, admin, created in _rows(
        db, "SELECT name, salt, hash, scrypt_n, scrypt_r, scrypt_p, admin, created_ms FROM accounts"
            " ORDER BY key"
    ):
        yield AccountRow(name, bytes(salt), bytes(digest), n, r, p, bool(admin), created)
    for row in _rows(
        db,
        "SELECT r.name, r.creator, r.topic, r.modes, r.key, r.created_ms, r.ann_id, r.ann_text, r.ann_by,"
        " r.ann_ms, max(coalesce(s.last_seq, 0), coalesce((SELECT max(seq) FROM messages m"
        " WHERE m.room = r.name), 0)) FROM rooms r LEFT JOIN room_seq s ON s.room = r.name ORDER BY r.name",
    ):
        yield RoomRow(*row)
    for row in _rows(db, "SELECT room, account_key, role FROM roles ORDER BY room, account_key"):
        yield RoleRow(*row)
    for row in _rows(db, "SELECT room, account_key, kind, until_ms, by_name, reason FROM sanctions"
                         " ORDER BY room, account_key, kind"):
        yield SanctionRow(*row)
    for row in _rows(db, "SELECT account_key, room, position FROM memberships"
                         " ORDER BY account_key, position"):
        yield MemberRow(*row)
    for row in _rows(db, "SELECT room, account_key FROM invites ORDER BY room, account_key"):
        yield InviteRow(*row)
    # Messages of rooms without a room record (an inconsistent older file) are left out with the
    # room: the reader requires every message's room to be declared.
    for room, seq, ts, user, text, flags, msg_id in _rows(
        db,
        "SELECT room, seq, ts_ms, user, text, flags, msg_id FROM messages"
        " WHERE room IN (SELECT name FROM rooms) ORDER BY room, seq",
    ):
        yield MessageRow(room, seq, ts, user, text, flags, msg_id % 2**64)


# ---------------------------------------------------------------- import into SQLite


def import_database(path: Path, db_path: Path) -> Counts:
    """Load an export file into a fresh database (new, or with no accounts and no history yet).

    Everything is written in one transaction: a bad line (reported with its number) leaves the
    database as it was. Room seqs, message ids and password hashes are kept as they were.

    Raises:
        ExportFileError: the file is bad (nothing was imported).
        StoreError: the database cannot be opened, is not fresh, or cannot be written.
    """
    Store(db_path).close()  # creates it with the current schema (or upgrades it), one-line errors
    try:
        db = sqlite3.connect(str(db_path), isolation_level=None)
        db.execute("PRAGMA busy_timeout=2000")
        (accounts,), (messages,) = (db.execute(f"SELECT count(*) FROM {t}").fetchone()
                                    for t in ("accounts", "messages"))
    except sqlite3.Error as exc:
        raise StoreError(_("cannot read {path}: {reason}").format(path=db_path, reason=exc)) from None
    try:
        if accounts or messages:
            raise StoreError(_("{path} already has accounts or history: import needs a fresh database"
                               " (a new --db path)").format(path=db_path))
        with open_export(path) as stream:
            db.execute("BEGIN IMMEDIATE")
            try:
                counts = _write_records(db, read_export(lines_of(stream)))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(_("cannot write {path}: {reason}").format(path=db_path, reason=exc)) from None
    finally:
        db.close()
    return counts


_INSERT = {
    AccountRow: "INSERT INTO accounts (key, name, salt, hash, scrypt_n, scrypt_r, scrypt_p, created_ms,"
                " admin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    RoomRow: "INSERT OR REPLACE INTO rooms (name, creator, topic, modes, key, created_ms, ann_id, ann_text,"
             " ann_by, ann_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    RoleRow: "INSERT OR REPLACE INTO roles (room, account_key, role) VALUES (?, ?, ?)",
    SanctionRow: "INSERT OR REPLACE INTO sanctions (room, account_key, kind, until_ms, by_name, reason)"
                 " VALUES (?, ?, ?, ?, ?, ?)",
    MemberRow: "INSERT OR REPLACE INTO memberships (account_key, room, position) VALUES (?, ?, ?)",
    InviteRow: "INSERT OR IGNORE INTO invites (room, account_key) VALUES (?, ?)",
    MessageRow: "INSERT INTO messages (room, seq, ts_ms, user, text, flags, user_key, msg_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
}  # fmt: skip


def _params(record: Record) -> tuple[Any, ...]:
    if isinstance(record, AccountRow):
        return (name_key(record.name), record.name, record.salt, record.digest, record.n, record.r,
                record.p, record.created_ms, int(record.admin))
    if isinstance(record, RoomRow):
        return (record.name, record.creator, record.topic, record.modes, record.key, record.created_ms,
                record.ann_id, record.ann_text, record.ann_by, record.ann_ms)
    if isinstance(record, MessageRow):
        msg_id = record.msg_id - 2**64 if record.msg_id >= 2**63 else record.msg_id  # SQLite: signed
        return (record.room, record.seq, record.ts_ms, record.user, record.text, record.flags,
                name_key(record.user), msg_id)
    return tuple(getattr(record, name) for name in record.__slots__)


def _write_records(db: sqlite3.Connection, records: Iterable[Record]) -> Counts:
    counts = Counts()
    pending: list[tuple[Any, ...]] = []
    pending_kind: type | None = None

    def flush() -> None:
        if pending_kind is not None and pending:
            db.executemany(_INSERT[pending_kind], pending)
        pending.clear()

    for record in records:
        if type(record) is not pending_kind or len(pending) >= _BATCH:
            flush()
            pending_kind = type(record)
        pending.append(_params(record))
        counts.add(record)
        if isinstance(record, RoomRow) and record.last_seq:
            db.execute("INSERT OR REPLACE INTO room_seq (room, last_seq) VALUES (?, ?)",
                       (record.name, record.last_seq))
    flush()
    return counts
