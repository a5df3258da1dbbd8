"""The server's SQLite database: accounts and room history.

Why SQLite in WAL mode with `synchronous=NORMAL`: a commit is durable against a crash of the server
process (`kill -9`) as soon as `commit()` returns, which is the promise labchat makes when it confirms a
message to its sender, and it costs no fsync per message. (Against power loss the last few commits may
be lost; `durable=True` switches to FULL for those who need it.)

Passwords are stored only as salted scrypt hashes (RFC 7914), with their parameters beside them so the
cost can be raised later without breaking old accounts.

The schema carries a version (`PRAGMA user_version`); `_MIGRATIONS` upgrades any older database in
order, so a newer labchat always opens an older file.

Checkpoints (copying the WAL back into the database file, with an fsync) are SQLite's one slow step in
normal running: by default the commit that fills the WAL to 1000 pages does it, inline. The server
moves them off its event loop (`checkpoint_in_background`, then `checkpoint()` from a thread, on a
connection of its own): at 1000 messages/s that took the slowest commits from 4-6 ms to well under
1 ms, and on a slow disk it is the difference between a stall for everyone and none.

History is bounded (`prune_batch`): by age and by the database's size, oldest first, a batch at a
time so that the event loop is never held for long. A room's last `seq` is kept in a table of its
own (`room_seq`), not derived from the messages, so that numbers never repeat even after pruning has
deleted every message of a room.

The database and its `-wal`/`-shm` files are created owner-only in an owner-only directory
(private_files.py says why); `warnings` lists what was found too open at start.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..i18n import _
from ..paths import user_data_file
from ..protocol.messages import is_valid_room, name_key
from .private_files import create_private_file, make_private_dir, tighten_database_files

#: scrypt cost (RFC 7914 parameters): N=2^14, r=8 costs about 16 MiB and some tens of milliseconds,
#: the interactive-login setting the scrypt paper recommends.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCHEMA_VERSION = 8

_MIGRATIONS: dict[int, str | tuple[str, ...]] = {
    1: """
        CREATE TABLE accounts (
            key        TEXT PRIMARY KEY,          -- casefolded name: names are unique regardless of case
            name       TEXT NOT NULL,             -- as first registered
            salt       BLOB NOT NULL,
            hash       BLOB NOT NULL,
            scrypt_n   INTEGER NOT NULL,
            scrypt_r   INTEGER NOT NULL,
            scrypt_p   INTEGER NOT NULL,
            created_ms INTEGER NOT NULL
        );
        CREATE TABLE messages (
            room    TEXT NOT NULL,
            seq     INTEGER NOT NULL,
            ts_ms   INTEGER NOT NULL,
            user    TEXT NOT NULL,
            text    TEXT NOT NULL,
            flags   INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (room, seq)
        );
    """,
    2: """
        ALTER TABLE messages ADD COLUMN user_key TEXT NOT NULL DEFAULT '';
        ALTER TABLE messages ADD COLUMN msg_id INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX messages_by_msg_id ON messages (user_key, msg_id);
    """,
    3: """
        CREATE TABLE room_seq (
            room     TEXT PRIMARY KEY,
            last_seq INTEGER NOT NULL              -- highest seq ever stored, pruned or not
        );
        INSERT INTO room_seq (room, last_seq) SELECT room, max(seq) FROM messages GROUP BY room;
    """,
    # Private messages held for a recipient who was offline (docs/protocol.md section 16.2). A new
    # table only: a database made by an older labchat keeps every row it had.
    4: """
        CREATE TABLE held_privates (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,  -- delivery order, and the handle to delete
            to_key     TEXT NOT NULL,                      -- casefolded recipient
            to_name    TEXT NOT NULL,
            sender     TEXT NOT NULL,
            sender_key TEXT NOT NULL,
            ts_ms      INTEGER NOT NULL,
            text       TEXT NOT NULL,
            flags      INTEGER NOT NULL DEFAULT 0,
            msg_id     INTEGER NOT NULL,
            UNIQUE (sender_key, msg_id)                        -- a resent WHISPER is held once
        );
        CREATE INDEX held_privates_by_recipient ON held_privates (to_key, id);
        CREATE INDEX held_privates_by_age ON held_privates (ts_ms);
    """,
    # Full-text search (docs/protocol.md section 15.5). An external-content FTS5 table indexes the
    # messages table without a second copy of the text; triggers keep it in step inside the same
    # transaction as each insert, and 'rebuild' indexes what an older database already holds.
    # A tuple: trigger bodies contain ';', so the statements cannot be split on it.
    5: (
        "CREATE VIRTUAL TABLE messages_fts USING fts5("
        " text, content='messages', content_rowid='rowid', tokenize='unicode61')",
        "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN"
        " INSERT INTO messages_fts (rowid, text) VALUES (new.rowid, new.text); END",
        "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN"
        " INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text); END",
        "CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN"
        " INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text);"
        " INSERT INTO messages_fts (rowid, text) VALUES (new.rowid, new.text); END",
        "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
    ),
    # Rooms and roles (docs/protocol.md section 18). New tables and one new column only: every row
    # an older database holds stays. Rooms that already have history are recorded as rooms, and
    # `lobby` always exists. Accounts get no memberships here: a login with an empty list joins
    # LOGIN's room and records it (18.3). `until_ms` NULL is a sanction until lifted.
    6: """
        CREATE TABLE rooms (
            name       TEXT PRIMARY KEY,
            creator    TEXT NOT NULL DEFAULT '',
            topic      TEXT NOT NULL DEFAULT '',
            modes      INTEGER NOT NULL DEFAULT 0,
            key        TEXT NOT NULL DEFAULT '',
            created_ms INTEGER NOT NULL DEFAULT 0,
            ann_id     INTEGER NOT NULL DEFAULT 0,   -- the last announcement number handed out
            ann_text   TEXT NOT NULL DEFAULT '',     -- the current announcement, '' for none
            ann_by     TEXT NOT NULL DEFAULT '',
            ann_ms     INTEGER NOT NULL DEFAULT 0
        );
        INSERT OR IGNORE INTO rooms (name) SELECT room FROM room_seq;
        INSERT OR IGNORE INTO rooms (name) VALUES ('lobby');
        CREATE TABLE memberships (
            account_key TEXT NOT NULL,
            room        TEXT NOT NULL,
            position    INTEGER NOT NULL,            -- join order within the account's list
            PRIMARY KEY (account_key, room)
        );
        CREATE INDEX memberships_by_room ON memberships (room);
        CREATE TABLE roles (
            room        TEXT NOT NULL,
            account_key TEXT NOT NULL,
            role        TEXT NOT NULL,               -- 'op' or 'voice'
            PRIMARY KEY (room, account_key)
        );
        CREATE TABLE sanctions (
            room        TEXT NOT NULL,
            account_key TEXT NOT NULL,
            kind        TEXT NOT NULL,               -- 'mute' or 'ban'
            until_ms    INTEGER,                     -- NULL: until lifted
            by_name     TEXT NOT NULL DEFAULT '',
            reason      TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (room, account_key, kind)
        );
        CREATE TABLE invites (
            room        TEXT NOT NULL,
            account_key TEXT NOT NULL,
            PRIMARY KEY (room, account_key)
        );
        CREATE TABLE announcement_seen (
            room            TEXT NOT NULL,
            announcement_id INTEGER NOT NULL,
            account_key     TEXT NOT NULL,
            PRIMARY KEY (room, announcement_id, account_key)
        );
        ALTER TABLE accounts ADD COLUMN admin INTEGER NOT NULL DEFAULT 0
    """,
    # The classroom (docs/protocol.md section 20; read and written by classroom_store.py): help
    # queues, the log of hands done, polls and their votes, quiet mode and class sessions. New
    # tables only.
    7: """
    CREATE TABLE hand_queue (
        room        TEXT NOT NULL,
        account_key TEXT NOT NULL,
        user        TEXT NOT NULL,
        seat        TEXT NOT NULL DEFAULT '',
        question    TEXT NOT NULL DEFAULT '',
        raised_ms   INTEGER NOT NULL,
        taken_by    TEXT NOT NULL DEFAULT '',      -- '' while nobody has taken it
        taken_ms    INTEGER NOT NULL DEFAULT 0,
        position    INTEGER NOT NULL,              -- order in the queue
        PRIMARY KEY (room, account_key)
    );
    CREATE TABLE hand_log (
        id          INTEGER PRIMARY KEY,
        room        TEXT NOT NULL,
        user        TEXT NOT NULL,
        seat        TEXT NOT NULL DEFAULT '',
        question    TEXT NOT NULL DEFAULT '',
        raised_ms   INTEGER NOT NULL,
        taken_by    TEXT NOT NULL DEFAULT '',
        taken_ms    INTEGER NOT NULL DEFAULT 0,
        done_ms     INTEGER NOT NULL,
        done_by     TEXT NOT NULL DEFAULT ''       -- the student itself (hand down) or an operator
    );
    CREATE INDEX hand_log_by_room ON hand_log (room, done_ms);
    CREATE TABLE polls (
        room        TEXT NOT NULL,
        poll_id     INTEGER NOT NULL,
        by_name     TEXT NOT NULL,
        question    TEXT NOT NULL,
        options     TEXT NOT NULL,                 -- a JSON list of strings
        anonymous   INTEGER NOT NULL DEFAULT 0,
        opened_ms   INTEGER NOT NULL,
        closed_ms   INTEGER NOT NULL DEFAULT 0,    -- 0 while open
        PRIMARY KEY (room, poll_id)
    );
    CREATE TABLE poll_votes (
        room        TEXT NOT NULL,
        poll_id     INTEGER NOT NULL,
        account_key TEXT NOT NULL,
        user        TEXT NOT NULL,
        choice      INTEGER NOT NULL,              -- 1-based
        PRIMARY KEY (room, poll_id, account_key)
    );
    CREATE TABLE class_settings (
        room           TEXT PRIMARY KEY,
        quiet_until_ms INTEGER NOT NULL DEFAULT 0,
        session_ms     INTEGER NOT NULL DEFAULT 0,
        session_seq    INTEGER NOT NULL DEFAULT 0
    )
    """,
    # Files (docs/protocol.md 21, server/files.py): one row per upload (stored_ms NULL) or kept file.
    # The bytes are on disk beside the database, named by `id` alone; AUTOINCREMENT so that an id a
    # client still holds never names another file. IF NOT EXISTS: the step may be renumbered safely.
    8: """
        CREATE TABLE IF NOT EXISTS files (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            sender      TEXT NOT NULL,
            sender_key  TEXT NOT NULL,
            room        TEXT NOT NULL,
            to_name     TEXT NOT NULL DEFAULT '',
            to_key      TEXT NOT NULL DEFAULT '',    -- one recipient's name key, '' for the room
            name        TEXT NOT NULL,
            size        INTEGER NOT NULL,
            sha256      BLOB NOT NULL,
            mime        TEXT NOT NULL DEFAULT '',
            flags       INTEGER NOT NULL DEFAULT 0,
            created_ms  INTEGER NOT NULL,
            touched_ms  INTEGER NOT NULL,            -- last offered: unfinished uploads expire from it
            stored_ms   INTEGER                      -- NULL while the upload is under way
        );
        CREATE INDEX IF NOT EXISTS files_room ON files (room, stored_ms);
        CREATE INDEX IF NOT EXISTS files_sender ON files (sender_key);
        CREATE INDEX IF NOT EXISTS files_to ON files (to_key)
    """,
}

#: A word for search: a run of letters and digits, as FTS5's unicode61 tokenizer cuts them.
_WORD_RE = re.compile(r"[^\W_]+")
#: Words of context on each side of a match in a search snippet.
SNIPPET_TOKENS = 24


class StoreError(Exception):
    """The database cannot be opened or used; the message says which file and why, in one line."""


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    key: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class SearchMatch:
    """One message matching a search: where it is, who wrote it, and the text around the match."""

    room: str
    seq: int
    ts_ms: int
    user: str
    flags: int
    snippet: str


@dataclass(frozen=True, slots=True)
class StoredMessage:
    room: str
    seq: int
    ts_ms: int
    user: str
    text: str
    flags: int
    msg_id: int


@dataclass(frozen=True, slots=True)
class HeldPrivate:
    """A private message waiting in the database for its recipient to log in."""

    id: int
    to: str
    sender: str
    ts_ms: int
    text: str
    flags: int
    msg_id: int


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """A room's durable settings and its current announcement (docs/protocol.md 18)."""

    name: str
    creator: str = ""
    topic: str = ""
    modes: int = 0
    key: str = ""
    created_ms: int = 0
    #: The last announcement number handed out (numbers never repeat, even after a clear)...
    announcement_id: int = 0
    #: ...and the current one's text ('' none), author and time.
    announcement_text: str = ""
    announcement_by: str = ""
    announcement_ms: int = 0


@dataclass(frozen=True, slots=True)
class SanctionRecord:
    """A mute or a ban of one account in one room; `until_ms` None: until lifted."""

    room: str
    account_key: str
    kind: str
    until_ms: int | None
    by: str
    reason: str


#: What the rooms-and-roles tables may hold; anything else in a row is skipped at load, not obeyed.
ROLE_NAMES = frozenset({"op", "voice"})
SANCTION_KINDS = frozenset({"mute", "ban"})


def _to_i64(value: int) -> int:
    """SQLite integers are signed 64-bit; client message ids are unsigned 64-bit."""
    return value - 2**64 if value >= 2**63 else value


def _from_row(row: tuple[object, ...]) -> StoredMessage:
    room, seq, ts_ms, user, text, flags, msg_id = row
    assert isinstance(msg_id, int)
    return StoredMessage(room, seq, ts_ms, user, text, flags, msg_id % 2**64)  # type: ignore[arg-type]


def default_db_path() -> Path:
    """The user's data directory (labchat/paths.py: the platform's, or the older XDG place where a
    database already is), so that a server started anywhere finds its accounts again."""
    return user_data_file("server.db")


def hash_password(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * n * r,
        dklen=32,
    )


@dataclass(frozen=True, slots=True)
class PruneBatch:
    """What one `prune_batch` deleted: how many messages, and per room the highest `seq` deleted."""

    deleted: int
    through_seq: dict[str, int]


class Store:
    """One SQLite file. Not thread-safe: the server uses it from its event loop only, apart from
    `checkpoint()`, which one other thread may run."""

    def __init__(
        self, path: Path | str, *, durable: bool = False, scrypt_n: int = SCRYPT_N
    ) -> None:
        self.path = Path(path)
        self.scrypt_n = scrypt_n
        #: Lines for the operator about files or directories found open to other users at start.
        self.warnings: list[str] = []
        try:
            if str(path) != ":memory:":
                self.warnings += make_private_dir(self.path.parent)
                create_private_file(self.path)
                # Before SQLite opens it: it gives the `-wal` and `-shm` it creates the database's mode.
                self.warnings += tighten_database_files(self.path)
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.execute("PRAGMA busy_timeout=2000")
            self._migrate()
            if str(path) != ":memory:":
                self.warnings += tighten_database_files(self.path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                _("cannot open database {path}: {reason}").format(path=self.path, reason=_one_line(exc))
            ) from exc
        self._checkpoint_db: sqlite3.Connection | None = None

    def checkpoint_in_background(self) -> None:
        """Commits stop checkpointing by themselves: from now on the owner calls `checkpoint()`
        regularly (or the WAL grows until the store is closed, which checkpoints it)."""
        self._db.execute("PRAGMA wal_autocheckpoint=0")

    def checkpoint(self) -> tuple[int, int]:
        """Copy what the WAL holds into the database file; (frames in the WAL, frames copied).

        Safe to call from one other thread while the owner goes on committing: it uses its own
        connection, and a PASSIVE checkpoint never waits for the writer nor makes it wait. Once all
        frames are copied the next commit starts the WAL from its beginning again, so it stays small.

        Raises:
            StoreError: the database cannot be written (disk full, I/O error).
        """
        if str(self.path) == ":memory:":
            return 0, 0  # no file, no WAL
        try:
            if self._checkpoint_db is None:
                self._checkpoint_db = sqlite3.connect(
                    str(self.path), isolation_level=None, check_same_thread=False
                )
            _busy, log, copied = self._checkpoint_db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            failed = _("cannot checkpoint database {path}: {error}")
            raise StoreError(failed.format(path=self.path, error=exc)) from exc
        return int(log), int(copied)

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(
                _("database {path} has schema {version}, newer than this labchat ({ours})").format(
                    path=self.path, version=version, ours=SCHEMA_VERSION
                )
            )
        # A quick integrity probe: a file that is not a database fails here, not in the middle of a chat.
        self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if version >= 1:
            self._probe_tables()
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._db.execute("BEGIN IMMEDIATE")
            script = _MIGRATIONS[target]
            for statement in script if isinstance(script, tuple) else script.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={target}")
            self._db.execute("COMMIT")

    def _probe_tables(self) -> None:
        """Read the first and the last page of every table and index the server reads at start, so
        that a damaged file fails at start with one line, not later in the middle of a chat. (A full
        `PRAGMA quick_check` reads the whole file: seconds for a large history.)"""
        for table in ("accounts", "messages"):
            self._db.execute(f"SELECT * FROM {table} ORDER BY rowid LIMIT 1").fetchall()
            self._db.execute(f"SELECT * FROM {table} ORDER BY rowid DESC LIMIT 1").fetchall()
        self._db.execute("SELECT room, max(seq) FROM messages GROUP BY room").fetchall()

    @property
    def schema_version(self) -> int:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        return int(version)

    def close(self) -> None:
        if self._checkpoint_db is not None:
            self._checkpoint_db.close()
        self._db.close()  # the last connection to close checkpoints what is left

    # ------------------------------------------------------------ accounts

    def get_account(self, name: str) -> Account | None:
        row = self._db.execute(
            "SELECT name, key, created_ms FROM accounts WHERE key = ?", (name_key(name),)
        ).fetchone()
        return Account(*row) if row else None

    def create_account(self, name: str, password: str) -> Account:
        salt = os.urandom(16)
        digest = hash_password(password, salt, self.scrypt_n, SCRYPT_R, SCRYPT_P)
        return self.insert_account(name, salt, digest, self.scrypt_n)

    def insert_account(self, name: str, salt: bytes, digest: bytes, scrypt_n: int) -> Account:
        """Store an account whose hash was computed elsewhere (off the server's event loop)."""
        created = int(time.time() * 1000)
        try:
            self._db.execute(
                "INSERT INTO accounts (key, name, salt, hash, scrypt_n, scrypt_r, scrypt_p, created_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name_key(name), name, salt, digest, scrypt_n, SCRYPT_R, SCRYPT_P, created),
            )
        except sqlite3.IntegrityError as exc:
            raise StoreError(_("account {name!r} exists already").format(name=name)) from exc
        return Account(name, name_key(name), created)

    def check_password(self, name: str, password: str) -> bool:
        """Constant-time comparison of scrypt hashes; False for an unknown name as well."""
        row = self._db.execute(
            "SELECT salt, hash, scrypt_n, scrypt_r, scrypt_p FROM accounts WHERE key = ?",
            (name_key(name),),
        ).fetchone()
        if row is None:
            return False
        salt, digest, n, r, p = row
        return hmac.compare_digest(hash_password(password, salt, n, r, p), digest)

    def password_record(self, name: str) -> tuple[bytes, bytes, int, int, int] | None:
        """The stored salt, hash and scrypt parameters, so the expensive check can run off the loop."""
        row = self._db.execute(
            "SELECT salt, hash, scrypt_n, scrypt_r, scrypt_p FROM accounts WHERE key = ?",
            (name_key(name),),
        ).fetchone()
        return None if row is None else (bytes(row[0]), bytes(row[1]), row[2], row[3], row[4])

    def set_password(self, name: str, password: str) -> bool:
        salt = os.urandom(16)
        digest = hash_password(password, salt, self.scrypt_n, SCRYPT_R, SCRYPT_P)
        cur = self._db.execute(
            "UPDATE accounts SET salt = ?, hash = ?, scrypt_n = ?, scrypt_r = ?, scrypt_p = ? WHERE key = ?",
            (salt, digest, self.scrypt_n, SCRYPT_R, SCRYPT_P, name_key(name)),
        )
        return cur.rowcount > 0

    def remove_account(self, name: str) -> bool:
        return (
            self._db.execute("DELETE FROM accounts WHERE key = ?", (name_key(name),)).rowcount > 0
        )

    def mirror_account(
        self, name: str, salt: bytes, digest: bytes, scrypt: tuple[int, int, int], admin: bool,
        created_ms: int,
    ) -> None:
        """Write an account as a cluster's accounts bucket holds it (cluster/accounts.py keeps this
        database a replica of the bucket): created, or its hash and admin flag replaced."""
        n, r, p = scrypt
        self._write([(
            "INSERT INTO accounts (key, name, salt, hash, scrypt_n, scrypt_r, scrypt_p, created_ms, admin)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET name = excluded.name,"
            " salt = excluded.salt, hash = excluded.hash, scrypt_n = excluded.scrypt_n,"
            " scrypt_r = excluded.scrypt_r, scrypt_p = excluded.scrypt_p, admin = excluded.admin",
            (name_key(name), name, salt, digest, n, r, p, created_ms, int(admin)),
        )])  # fmt: skip

    def list_accounts(self) -> list[Account]:
        rows = self._db.execute(
            "SELECT name, key, created_ms FROM accounts ORDER BY key"
        ).fetchall()
        return [Account(*row) for row in rows]

    # ------------------------------------------------------------ messages

    def append_messages(self, messages: Iterable[StoredMessage], user_keys: Iterable[str]) -> None:
        """Store a batch in one transaction: one commit (and one WAL write) for many messages."""
        rows = [
            (msg.room, msg.seq, msg.ts_ms, msg.user, msg.text, msg.flags, key, _to_i64(msg.msg_id))
            for msg, key in zip(messages, user_keys, strict=True)
        ]
        last: dict[str, int] = {}
        for row in rows:
            last[row[0]] = max(last.get(row[0], 0), row[1])
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO messages (room, seq, ts_ms, user, text, flags, user_key, msg_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._db.executemany(
                "INSERT INTO room_seq (room, last_seq) VALUES (?, ?) ON CONFLICT (room)"
                " DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
                last.items(),
            )

    def find_message(self, user: str, msg_id: int) -> StoredMessage | None:
        """The message a client sent with `msg_id`, if it was stored: makes resending idempotent."""
        row = self._db.execute(
            "SELECT room, seq, ts_ms, user, text, flags, msg_id FROM messages"
            " WHERE user_key = ? AND msg_id = ? LIMIT 1",
            (name_key(user), _to_i64(msg_id)),
        ).fetchone()
        return _from_row(row) if row else None

    def messages_after(self, room: str, seq: int, limit: int) -> list[StoredMessage]:
        rows = self._db.execute(
            "SELECT room, seq, ts_ms, user, text, flags, msg_id FROM messages"
            " WHERE room = ? AND seq > ? ORDER BY seq LIMIT ?",
            (room, seq, limit),
        ).fetchall()
        return [_from_row(row) for row in rows]

    def last_messages(self, room: str, count: int) -> list[StoredMessage]:
        rows = self._db.execute(
            "SELECT room, seq, ts_ms, user, text, flags, msg_id FROM messages"
            " WHERE room = ? ORDER BY seq DESC LIMIT ?",
            (room, count),
        ).fetchall()
        return [_from_row(row) for row in reversed(rows)]

    def last_seq(self, room: str) -> int:
        """The highest `seq` the room ever stored, even if pruning has deleted it since."""
        (seq,) = self._db.execute(
            "SELECT max(coalesce((SELECT last_seq FROM room_seq WHERE room = ?), 0),"
            " coalesce((SELECT max(seq) FROM messages WHERE room = ?), 0))",
            (room, room),
        ).fetchone()
        return int(seq)

    def messages_before(self, room: str, before_seq: int, limit: int) -> list[StoredMessage]:
        """Up to `limit` messages with `seq < before_seq`, oldest first (a history page).

        Raises:
            StoreError: the database cannot be read.
        """
        try:
            rows = self._db.execute(
                "SELECT room, seq, ts_ms, user, text, flags, msg_id FROM messages"
                " WHERE room = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                (room, min(before_seq, 2**63 - 1), limit),
            ).fetchall()
        except sqlite3.Error as exc:
            failed = _("cannot read history from {path}: {error}")
            raise StoreError(failed.format(path=self.path, error=exc)) from exc
        return [_from_row(row) for row in reversed(rows)]

    def search(self, room: str, query: str, limit: int) -> list[SearchMatch]:
        """Messages of `room` containing every word of `query`, newest first, at most `limit`.

        The user's words are quoted one by one, so FTS5's query syntax (quotes, `*`, AND, NEAR,
        column filters) never applies: any input is a literal search, never an error.

        Raises:
            StoreError: the database cannot be read.
        """
        # Newest first by rowid, not seq: rows are inserted in seq order and only the oldest are ever
        # deleted (retention), so the two orders agree, and FTS5 walks its index in rowid order.
        # Ordering by seq made SQLite scan the room's rows and test the match on each: 0.7 s instead
        # of 0.1 ms on 100 000 rows.
        words = _WORD_RE.findall(query)
        if not words:
            return []
        match = " ".join(f'"{word}"' for word in words)
        try:
            rows = self._db.execute(
                "SELECT m.room, m.seq, m.ts_ms, m.user, m.flags,"
                f" snippet(messages_fts, 0, '', '', '…', {SNIPPET_TOKENS})"
                " FROM messages_fts JOIN messages AS m ON m.rowid = messages_fts.rowid"
                " WHERE messages_fts MATCH ? AND m.room = ? ORDER BY messages_fts.rowid DESC LIMIT ?",
                (match, room, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(_("cannot search {path}: {error}").format(path=self.path, error=exc)) from exc
        return [SearchMatch(*row) for row in rows]

    # ------------------------------------------------------------ retention

    def used_bytes(self) -> int:
        """Bytes of the database file in use (pages not on the free list): what history costs.

        The file itself never shrinks (that would take a VACUUM, which rewrites it all); pages freed
        by pruning are reused by new messages, so with a size cap the file stays near the cap.
        """
        (page_size,) = self._db.execute("PRAGMA page_size").fetchone()
        (pages,) = self._db.execute("PRAGMA page_count").fetchone()
        (free,) = self._db.execute("PRAGMA freelist_count").fetchone()
        return int((pages - free) * page_size)

    def prune_batch(self, *, before_ms: int | None, max_bytes: int | None, batch: int) -> PruneBatch:
        """Delete at most `batch` of the oldest messages: those stored before `before_ms`, or the
        oldest whatever their age while the database uses more than `max_bytes`.

        Oldest means first inserted (rowid order), which is time order as long as the clock does
        not jump back; the scan stops at the first message young enough to keep, so a call costs
        O(batch) however big the history. Call it again while it deletes anything.

        Raises:
            StoreError: the database cannot be written.
        """
        try:
            rows = self._db.execute(
                "SELECT rowid, room, seq, ts_ms FROM messages ORDER BY rowid LIMIT ?", (batch,)
            ).fetchall()
            if not rows:
                return PruneBatch(0, {})
            if max_bytes is None or self.used_bytes() <= max_bytes:
                if before_ms is None:
                    return PruneBatch(0, {})
                old = 0
                while old < len(rows) and rows[old][3] < before_ms:
                    old += 1
                rows = rows[:old]
                if not rows:
                    return PruneBatch(0, {})
            through: dict[str, int] = {}
            for _rowid, room, seq, _ts in rows:
                through[room] = max(through.get(room, 0), seq)
            with self._db:
                self._db.execute("BEGIN")
                deleted = self._db.execute(
                    "DELETE FROM messages WHERE rowid <= ?", (rows[-1][0],)
                ).rowcount
        except sqlite3.Error as exc:
            pruning = _("cannot prune history in {path}: {error}")
            raise StoreError(pruning.format(path=self.path, error=_one_line(exc))) from exc
        return PruneBatch(deleted, through)


    # ------------------------------------------------------------ held private messages

    def hold_private(self, sender: str, to: str, ts_ms: int, text: str, flags: int, msg_id: int) -> int:
        """Store a private message for an offline recipient and commit. Returns the `ts_ms` it is held
        under: `ts_ms`, or the original one when this (sender, msg_id) is waiting already (a resend
        after a server restart, when the relay's memory of recent ids is gone)."""
        with self._db:
            self._db.execute("BEGIN")
            cur = self._db.execute(
                "INSERT OR IGNORE INTO held_privates"
                " (to_key, to_name, sender, sender_key, ts_ms, text, flags, msg_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name_key(to), to, sender, name_key(sender), ts_ms, text, flags, _to_i64(msg_id)),
            )
            if cur.rowcount:
                return ts_ms
            (held_ts,) = self._db.execute(
                "SELECT ts_ms FROM held_privates WHERE sender_key = ? AND msg_id = ?",
                (name_key(sender), _to_i64(msg_id)),
            ).fetchone()
        return int(held_ts)

    def held_count(self, to: str) -> int:
        (count,) = self._db.execute(
            "SELECT count(*) FROM held_privates WHERE to_key = ?", (name_key(to),)
        ).fetchone()
        return int(count)

    def held_for(self, to: str, limit: int, since_ms: int = 0) -> list[HeldPrivate]:
        """The messages held for `to` and stored at or after `since_ms`, oldest first. A read only:
        every login asks, and a write transaction per login would cost more than the question."""
        rows = self._db.execute(
            "SELECT id, to_name, sender, ts_ms, text, flags, msg_id FROM held_privates"
            " WHERE to_key = ? AND ts_ms >= ? ORDER BY id LIMIT ?",
            (name_key(to), since_ms, limit),
        ).fetchall()
        return [HeldPrivate(r[0], r[1], r[2], r[3], r[4], r[5], r[6] % 2**64) for r in rows]

    def find_held(self, sender: str, msg_id: int) -> int | None:
        """The `ts_ms` of the held message `sender` sent as `msg_id`, if it is still waiting."""
        row = self._db.execute(
            "SELECT ts_ms FROM held_privates WHERE sender_key = ? AND msg_id = ?",
            (name_key(sender), _to_i64(msg_id)),
        ).fetchone()
        return int(row[0]) if row else None

    def delete_held(self, ids: Iterable[int]) -> None:
        """Forget held messages the recipient has received (its link acknowledged them)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM held_privates WHERE id = ?", [(i,) for i in ids])

    def expire_held(self, older_than_ms: int) -> int:
        """Delete held messages stored before `older_than_ms`; returns how many went."""
        with self._db:
            self._db.execute("BEGIN")
            cur = self._db.execute("DELETE FROM held_privates WHERE ts_ms < ?", (older_than_ms,))
        return int(cur.rowcount)

    # ------------------------------------------------------------ rooms and roles (protocol.md 18)
    # Reads at start skip rows that break the rules of the schema's comments (a hand-edited or odd
    # database): they land in `warnings`, one line each, and the server starts without them.

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            return list(self._db.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            text = _("cannot read {path}: {reason}").format(path=self.path, reason=_one_line(exc))
            raise StoreError(text) from exc

    def _write(self, statements: Iterable[tuple[str, tuple[object, ...]]]) -> int:
        """Run statements in one transaction; returns the rows the last one changed."""
        changed = 0
        try:
            with self._db:
                self._db.execute("BEGIN")
                for sql, params in statements:
                    changed = self._db.execute(sql, params).rowcount
        except sqlite3.Error as exc:
            text = _("cannot write {path}: {reason}").format(path=self.path, reason=_one_line(exc))
            raise StoreError(text) from exc
        return changed

    def load_rooms(self) -> list[RoomRecord]:
        rooms = []
        for row in self._read(
            "SELECT name, creator, topic, modes, key, created_ms, ann_id, ann_text, ann_by, ann_ms"
            " FROM rooms ORDER BY name"
        ):
            try:
                record = RoomRecord(*_checked_room_row(row))  # type: ignore[arg-type]
            except ValueError as exc:
                skipped = _("skipped a room row in {path}: {error}")
                self.warnings.append(skipped.format(path=self.path, error=exc))
                continue
            rooms.append(record)
        return rooms

    def save_room(self, room: RoomRecord) -> None:
        self._write([(
            "INSERT INTO rooms (name, creator, topic, modes, key, created_ms, ann_id, ann_text, ann_by,"
            " ann_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
            " creator = excluded.creator, topic = excluded.topic, modes = excluded.modes,"
            " key = excluded.key, ann_id = excluded.ann_id, ann_text = excluded.ann_text,"
            " ann_by = excluded.ann_by, ann_ms = excluded.ann_ms",
            (room.name, room.creator, room.topic, room.modes, room.key, room.created_ms,
             room.announcement_id, room.announcement_text, room.announcement_by, room.announcement_ms),
        )])  # fmt: skip

    def memberships_of(self, account: str) -> list[str]:
        """The rooms of an account's list, in the order it joined them."""
        rows = self._read(
            "SELECT room FROM memberships WHERE account_key = ? ORDER BY position", (name_key(account),)
        )
        return [str(r[0]) for r in rows]

    def add_membership(self, account: str, room: str) -> None:
        key = name_key(account)
        self._write([(
            "INSERT OR IGNORE INTO memberships (account_key, room, position) VALUES (?, ?,"
            " (SELECT coalesce(max(position), 0) + 1 FROM memberships WHERE account_key = ?))",
            (key, room, key),
        )])  # fmt: skip

    def remove_membership(self, account: str, room: str) -> bool:
        return self._write([(
            "DELETE FROM memberships WHERE account_key = ? AND room = ?", (name_key(account), room)
        )]) > 0  # fmt: skip

    def member_counts(self) -> dict[str, int]:
        """Accounts that have each room in their list (ROOM_STATE `members`, without guests)."""
        return {str(r[0]): int(r[1]) for r in self._read(  # type: ignore[call-overload]
            "SELECT room, count(*) FROM memberships GROUP BY room"
        )}  # fmt: skip

    def member_names(self, room: str) -> list[str]:
        """The account names (own spelling) that have `room` in their list."""
        rows = self._read(
            "SELECT coalesce(a.name, m.account_key) FROM memberships AS m"
            " LEFT JOIN accounts AS a ON a.key = m.account_key WHERE m.room = ?",
            (room,),
        )
        return [str(r[0]) for r in rows]

    def load_roles(self) -> list[tuple[str, str, str]]:
        """(room, account key, role) for every valid role row."""
        out = []
        for room, key, role in self._read("SELECT room, account_key, role FROM roles"):
            if role in ROLE_NAMES and isinstance(room, str) and isinstance(key, str):
                out.append((room, key, str(role)))
            else:
                skipped = _("skipped a role row in {path}: {room!r} {user!r} {role!r}")
                self.warnings.append(skipped.format(path=self.path, room=room, user=key, role=role))
        return out

    def set_role(self, room: str, account: str, role: str | None) -> None:
        """Give `role` ('op', 'voice') in `room`, or take it (None)."""
        if role is None:
            self._write([("DELETE FROM roles WHERE room = ? AND account_key = ?", (room, name_key(account)))])
        else:
            assert role in ROLE_NAMES
            self._write([(
                "INSERT INTO roles (room, account_key, role) VALUES (?, ?, ?)"
                " ON CONFLICT (room, account_key) DO UPDATE SET role = excluded.role",
                (room, name_key(account), role),
            )])  # fmt: skip

    def load_sanctions(self) -> list[SanctionRecord]:
        out = []
        for row in self._read("SELECT room, account_key, kind, until_ms, by_name, reason FROM sanctions"):
            room, key, kind, until, by, reason = row
            if (
                kind in SANCTION_KINDS and isinstance(room, str) and isinstance(key, str)
                and (until is None or isinstance(until, int))
            ):  # fmt: skip
                out.append(SanctionRecord(room, key, str(kind), until, str(by), str(reason)))
            else:
                skipped = _("skipped a sanction row in {path}: {room!r} {user!r} {kind!r}")
                self.warnings.append(skipped.format(path=self.path, room=room, user=key, kind=kind))
        return out

    def set_sanction(self, sanction: SanctionRecord) -> None:
        assert sanction.kind in SANCTION_KINDS
        self._write([(
            "INSERT INTO sanctions (room, account_key, kind, until_ms, by_name, reason)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (room, account_key, kind) DO UPDATE SET"
            " until_ms = excluded.until_ms, by_name = excluded.by_name, reason = excluded.reason",
            (sanction.room, sanction.account_key, sanction.kind, sanction.until_ms, sanction.by,
             sanction.reason),
        )])  # fmt: skip

    def lift_sanction(self, room: str, account_key: str, kind: str) -> bool:
        return self._write([(
            "DELETE FROM sanctions WHERE room = ? AND account_key = ? AND kind = ?", (room, account_key, kind)
        )]) > 0  # fmt: skip

    def load_invites(self) -> list[tuple[str, str]]:
        return [(str(r[0]), str(r[1])) for r in self._read("SELECT room, account_key FROM invites")]

    def add_invite(self, room: str, account: str) -> None:
        self._write([("INSERT OR IGNORE INTO invites VALUES (?, ?)", (room, name_key(account)))])

    def remove_invites(self, room: str, account: str | None = None) -> None:
        """Forget one account's invitation to `room`, or (None) all of the room's."""
        if account is None:
            self._write([("DELETE FROM invites WHERE room = ?", (room,))])
        else:
            sql = "DELETE FROM invites WHERE room = ? AND account_key = ?"
            self._write([(sql, (room, name_key(account)))])

    def seen_by(self, room: str, announcement_id: int) -> set[str]:
        """The account keys that have acknowledged announcement `announcement_id` of `room`."""
        rows = self._read(
            "SELECT account_key FROM announcement_seen WHERE room = ? AND announcement_id = ?",
            (room, announcement_id),
        )
        return {str(r[0]) for r in rows}

    def mark_seen(self, room: str, announcement_id: int, account: str) -> None:
        self._write([(
            "INSERT OR IGNORE INTO announcement_seen VALUES (?, ?, ?)",
            (room, announcement_id, name_key(account)),
        )])  # fmt: skip

    def forget_seen(self, room: str, below_id: int) -> None:
        """Acknowledgements of a room's older announcements are of no more use."""
        sql = "DELETE FROM announcement_seen WHERE room = ? AND announcement_id < ?"
        self._write([(sql, (room, below_id))])

    def is_admin(self, name: str) -> bool:
        rows = self._read("SELECT admin FROM accounts WHERE key = ?", (name_key(name),))
        return bool(rows and rows[0][0])

    def set_admin(self, name: str, admin: bool) -> bool:
        """Mark an account a server admin or not; False if there is no such account."""
        return self._write([(
            "UPDATE accounts SET admin = ? WHERE key = ?", (int(admin), name_key(name))
        )]) > 0  # fmt: skip

    def list_admins(self) -> list[str]:
        return [str(r[0]) for r in self._read("SELECT name FROM accounts WHERE admin != 0 ORDER BY key")]



def _checked_room_row(row: tuple[object, ...]) -> tuple[object, ...]:
    """A `rooms` row as RoomRecord's fields, or ValueError saying what is wrong with it."""
    name = row[0]
    if not isinstance(name, str) or not is_valid_room(name):
        raise ValueError(f"invalid room name {name!r}")
    texts = (1, 2, 4, 7, 8)
    numbers = (3, 5, 6, 9)
    if any(not isinstance(row[i], str) for i in texts) or any(not isinstance(row[i], int) for i in numbers):
        raise ValueError(f"room {name}: a field of the wrong type")
    return row


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
