"""`labchat-admin export-room`: a room's transcript from the server's database (docs/protocol.md
20.6), rendered by labchat/transcript.py as Markdown and HTML.

What it covers: the messages after the room's class session started (`--since session`, the
default when a session was started), or since a time (`--since 2026-12-01T09:00`), or over the
last hours (`--since 3h`); the files offered (when the database has a files table), the polls with
their results and the help queue's log over the same time.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime
from pathlib import Path

from ..i18n import _
from ..protocol import messages as m
from ..transcript import Hand, Offered, PollResult, Said, Transcript, to_html, to_markdown
from .classroom_store import ClassroomStore
from .store import Store, StoreError

#: Without a session and without --since: the last day.
DEFAULT_HOURS = 24
_HOURS = re.compile(r"^([0-9]{1,5})h$")
#: Messages read per query.
_BATCH = 5000


def since_ms(store: Store, room: str, since: str | None, now_ms: int) -> tuple[int, int]:
    """(time, seq) from which the transcript starts; StoreError with one line for a bad value."""
    settings = ClassroomStore(store).settings(room)
    if since is None:
        if settings.session_ms:
            return settings.session_ms, settings.session_seq
        return now_ms - DEFAULT_HOURS * 3_600_000, 0
    if since == "session":
        if not settings.session_ms:
            raise StoreError(
                _("no class session was started in {room}: use --since TIME or --since Nh").format(room=room)
            )
        return settings.session_ms, settings.session_seq
    hours = _HOURS.match(since)
    if hours:
        return now_ms - int(hours.group(1)) * 3_600_000, 0
    try:
        when = datetime.fromisoformat(since)
    except ValueError:
        raise StoreError(
            _(
                "--since {value!r}: give an ISO time (2026-12-01T09:00), 'session' or a number of hours (3h)"
            ).format(value=since)
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # a time without a zone is local
    return int(when.timestamp() * 1000), 0


def _files(store: Store, room: str, start_ms: int) -> tuple[Offered, ...]:
    """File offers, if this database has a files table (docs/protocol.md 21): found by its columns,
    so that the export does not depend on one layout."""
    try:
        cols = [str(r[1]) for r in store._read("PRAGMA table_info(files)")]
    except StoreError:
        return ()
    if not cols:
        return ()

    def pick(*names: str) -> str | None:
        return next((n for n in names if n in cols), None)

    ts, name, size = (
        pick("ts_ms", "offered_ms", "created_ms"),
        pick("name", "file_name"),
        pick("size", "size_bytes"),
    )
    user = pick("user", "sender", "by_name", "owner")
    if not (ts and user and name and size and "room" in cols):
        return ()
    where = f"room = ? AND {ts} >= ?"
    if "to_key" in cols:
        where += " AND to_key = ''"  # a file offered to one member is not the room's
    if "stored_ms" in cols:
        where += " AND stored_ms IS NOT NULL"  # an upload never finished was never offered
    try:
        rows = store._read(
            f"SELECT {ts}, {user}, {name}, {size} FROM files WHERE {where} ORDER BY {ts}", (room, start_ms)
        )
    except (StoreError, sqlite3.Error):
        return ()
    return tuple(Offered(int(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows)  # type: ignore[call-overload]


def build(store: Store, room: str, since: str | None, now_ms: int) -> Transcript:
    """The transcript of `room` from `since` (see `since_ms`) to `now_ms`."""
    if not m.is_valid_room(room) or room not in {r.name for r in store.load_rooms()}:
        raise StoreError(_("no room named {room!r}").format(room=room))
    start_ms, start_seq = since_ms(store, room, since, now_ms)
    messages: list[Said] = []
    after = start_seq
    while True:
        batch = store.messages_after(room, after, _BATCH)
        for stored in batch:
            if stored.ts_ms >= start_ms:
                messages.append(
                    Said(stored.ts_ms, stored.user, stored.text, bool(stored.flags & m.FLAG_ACTION))
                )
        if len(batch) < _BATCH:
            break
        after = batch[-1].seq
    classroom = ClassroomStore(store)
    polls = tuple(
        PollResult(p.opened_ms, p.by, p.question, p.options, p.counts(), len(p.votes), p.anonymous, p.closed)
        for _poll_id, p in classroom.load_polls(room, since_ms=start_ms)
    )
    hands = tuple(
        Hand(h.user, h.seat, h.question, h.raised_ms, h.taken_by, h.taken_ms, h.done_ms, h.done_by)
        for h in classroom.hand_log(room, start_ms)
        if h.raised_ms >= start_ms or h.done_ms >= start_ms or not h.done_ms
    )
    topic = next((r.topic for r in store.load_rooms() if r.name == room), "")
    return Transcript(
        room, start_ms, now_ms, topic, tuple(messages), _files(store, room, start_ms), polls, hands
    )


def export(store: Store, room: str, since: str | None, out: Path | None, now_ms: int) -> tuple[Path, Path]:
    """Write PATH.md and PATH.html (default ./ROOM-DATE); returns both paths."""
    transcript = build(store, room, since, now_ms)
    if out is None:
        day = datetime.fromtimestamp(transcript.since_ms / 1000).strftime("%Y-%m-%d")
        out = Path(f"{room}-{day}")
    if out.suffix in (".md", ".html"):
        out = out.with_suffix("")
    md, page = out.with_name(out.name + ".md"), out.with_name(out.name + ".html")
    try:
        md.write_text(to_markdown(transcript), encoding="utf-8")
        page.write_text(to_html(transcript), encoding="utf-8")
    except OSError as exc:
        raise StoreError(
            _("cannot write {path}: {reason}").format(path=exc.filename, reason=exc.strerror)
        ) from None
    return md, page
