"""Line mode (`--plain`, `--json`): stdin lines in, one line per event out. For scripts, bots, screen
readers and tests.

Each event is printed and flushed the moment it arrives, so a pipe sees it at once. Text output is the
IRC look (`14:02:05 <alice> hello`, `14:02:07 * bob joined`); `--json` prints one object per line with
at least `type`, `user`, `text`, `ts` (ISO 8601), and `seq` for room messages.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from ..i18n import N_, _, ngettext
from ..protocol import events as ev
from ..protocol import messages as m
from ..protocol.errors import ErrorCode
from . import room_news
from .core import ChatClient, human_size


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


def _hms(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def _with_away(
    users: tuple[str, ...],
    away: dict[str, str],
    modes: dict[str, int] | None = None,
    seats: dict[str, str] | None = None,
) -> list[str]:
    """Names for the online line: "@teacher" for an operator, "+bob" voiced, "ani (guest)", a seat
    "budi at PC-14", and an away one followed by its reason: "bob (away: lunch)"."""
    if not away and not modes and not seats:
        return list(users)
    out = []
    for user in users:
        label = room_news.member_label(user, modes.get(user, 0)) if modes else user
        if seats and seats.get(user):
            label = _("{name} at {seat}").format(name=label, seat=seats[user])
        if user not in away:
            out.append(label)
        else:
            if away[user]:
                out.append(_("{name} (away: {reason})").format(name=label, reason=away[user]))
            else:
                out.append(_("{name} (away)").format(name=label))
    return out


def _away_text(event: ev.UserAway) -> str:
    if not event.away:
        return _("{user} is back").format(user=event.user)
    if event.reason:
        return _("{user} is away: {reason}").format(user=event.user, reason=event.reason)
    return _("{user} is away").format(user=event.user)


def _iso_or_none(ts: float | None) -> str | None:
    return None if ts is None or math.isinf(ts) else _iso(ts)


_PART_CODES: dict[int, str] = {ErrorCode.KICKED: "kicked", ErrorCode.BANNED: "banned"}


def event_record(event: ev.Event, now: float, me: str | None = None) -> dict[str, Any] | None:
    """The JSON object for an event (None for events line mode does not show). `me`: our own user
    name, the `user` of our own messages when the server confirms them. Every record has `room`:
    the room it belongs to, or None (private messages, the connection's state)."""
    rec = _record(event, now, me)
    if rec is not None:
        rec.setdefault("room", None)
    return rec


def _class_record(event: ev.Event, now: float) -> dict[str, Any] | None:
    """The records of the classroom (docs/protocol.md 20), the --json contract."""
    match event:
        case ev.QueueUpdated():
            entries = [
                {"user": i.user, "seat": i.seat, "question": i.question, "since": _iso(i.since),
                 "taken_by": i.taken_by or None}
                for i in event.entries
            ]  # fmt: skip
            return {
                "type": "queue", "user": None, "ts": _iso(now), "room": event.room, "entries": entries,
                "text": "\n".join(room_news.queue_lines(event, now)),
            }  # fmt: skip
        case ev.PollShown():
            return {
                "type": "poll", "user": event.by, "ts": _iso(now), "room": event.room, "id": event.poll_id,
                "by": event.by, "question": event.question, "options": list(event.options),
                "anonymous": event.anonymous, "closed": event.closed, "counts": list(event.counts),
                "voters": event.voters, "your_choice": event.your_choice,
                "ballots": [{"choice": choice, "user": user} for choice, user in event.ballots],
                "text": "\n".join(room_news.poll_lines(event)),
            }  # fmt: skip
    return None


def _room_record(event: ev.Event, now: float, me: str | None = None) -> dict[str, Any] | None:
    """The records of rooms and roles (docs/protocol.md 18), the --json contract."""
    match event:
        case ev.RoomState():
            return {
                "type": "room", "user": None, "ts": _iso(now), "room": event.room, "topic": event.topic,
                "modes": room_news.mode_words(event.modes), "you": room_news.member_words(event.you),
                "members": event.members, "joined": event.joined,
                "muted_until": _iso_or_none(event.muted_until),
                "quiet_until": _iso_or_none(event.quiet_until),
                "text": room_news.describe(event),
            }  # fmt: skip
        case ev.RoomLeft():
            return {
                "type": "part", "user": None, "ts": _iso(now), "room": event.room,
                "code": _PART_CODES.get(event.code, "left"), "by": event.by or None, "reason": event.reason,
                "until": _iso_or_none(event.until),
                "until_lifted": event.until is not None and math.isinf(event.until),
                "text": room_news.describe(event, now),
            }  # fmt: skip
        case ev.RoomList():
            rooms = [
                {"room": i.room, "online": i.online, "topic": i.topic, "modes": room_news.mode_words(i.modes)}
                for i in event.rooms
            ]
            return {
                "type": "rooms", "user": None, "ts": _iso(now), "rooms": rooms, "more": event.more,
                "text": "\n".join(room_news.room_list_lines(event.rooms, event.more)),
            }  # fmt: skip
        case ev.RoomEvent():
            return {
                "type": "room_event", "user": None, "ts": _iso(event.ts), "room": event.room,
                "action": room_news.action_word(event.action), "actor": event.actor or None,
                "target": event.target or None, "minutes": event.minutes, "value": event.value,
                "text": room_news.describe(event, me=me),
            }  # fmt: skip
        case ev.Announcement():
            return {
                "type": "announcement", "user": event.by, "ts": _iso(event.ts), "room": event.room,
                "id": event.announcement_id, "by": event.by, "text": event.text,
            }  # fmt: skip
        case ev.AnnouncementTally():
            return {
                "type": "tally", "user": None, "ts": _iso(now), "room": event.room,
                "id": event.announcement_id, "seen": event.seen, "total": event.total,
                "not_yet": list(event.not_yet), "text": room_news.describe(event),
            }  # fmt: skip
        case ev.RequestFailed():
            return {
                "type": "error", "user": None, "ts": _iso(now), "room": event.room or None,
                "request": event.request, "code": event.code, "text": event.text,
            }  # fmt: skip
        case ev.CurrentRoomChanged(joined=False):
            if event.room:
                text = _("now talking in #{room}").format(room=event.room)
            else:
                text = _("you are in no room now: /join ROOM")
            return {"type": "system", "user": None, "ts": _iso(now), "room": event.room or None, "text": text}
    return _class_record(event, now)


def _record(event: ev.Event, now: float, me: str | None) -> dict[str, Any] | None:
    match event:
        case ev.MessageReceived():
            return {
                "type": "message",
                "user": event.user,
                "text": event.text,
                "ts": _iso(event.ts),
                "seq": event.seq,
                "room": event.room,
                "action": event.action,
                "history": event.history,
                "own": event.own,
            }
        case ev.MessageDelivered(to=None):
            return {
                "type": "message",
                "user": me,
                "text": event.text,
                "ts": _iso(event.ts),
                "seq": event.seq,
                "room": event.room,
                "action": event.action,
                "history": False,
                "own": True,
                # Quiet mode (docs/protocol.md 20.5): confirmed with seq 0, seen by the operators only.
                "to_ops": event.seq == 0,
            }
        case ev.MessageDelivered():
            return {
                "type": "private",
                "user": me,
                "to": event.to,
                "text": event.text,
                "ts": _iso(event.ts),
                "action": event.action,
                "own": True,
            }
        case ev.PrivateReceived():
            return {
                "type": "private",
                "user": event.sender,
                "to": event.to,
                "text": event.text,
                "ts": _iso(event.ts),
                "action": event.action,
                "own": False,
                "held": event.held,
                "to_ops": event.to_ops,
            }
        case ev.UserAway():
            return {
                "type": "away",
                "user": event.user,
                "away": event.away,
                "reason": event.reason,
                "text": _away_text(event),
                "ts": _iso(event.ts),
                "room": event.room,
            }
        case ev.UserJoined():
            return {
                "type": "join",
                "user": event.user,
                "text": _("{user} joined").format(user=event.user),
                "ts": _iso(event.ts),
                "room": event.room,
                "seat": event.seat,  # 20.2: where the newcomer sits ("" unknown)
            }
        case ev.UserLeft():
            return {
                "type": "leave",
                "user": event.user,
                "text": (
                    _("{user} left").format(user=event.user)
                    if event.reason == "quit"
                    else _("{user} left ({reason})").format(user=event.user, reason=event.reason)
                ),
                "ts": _iso(event.ts),
                "room": event.room,
                "reason": event.reason,
            }
        case ev.PresenceUpdated():
            names = ", ".join(_with_away(event.users, event.away, event.modes))
            # Seats on a line of their own: the online line keeps the words scripts already read.
            seated = room_news.seats_line(event.users, event.seats)
            if seated:
                names += "\n" + seated
            return {
                "type": "presence",
                "user": None,
                "users": list(event.users),
                "away": dict(event.away),
                "modes": {name: room_news.member_words(bits) for name, bits in event.modes.items()},
                "seats": dict(event.seats),
                "room": event.room,
                "text": _("{count} online: {names}").format(count=len(event.users), names=names),
                "ts": _iso(now),
            }
        case ev.MessageFailed():
            return {
                "type": "error",
                "user": None,
                "text": _("not delivered: {reason}: {text}").format(reason=event.reason, text=event.text),
                "ts": _iso(now),
                "to": event.to,
                "room": event.room or None,
                "code": event.code,
            }
        case ev.LoginRefused():
            return {
                "type": "error",
                "user": None,
                "text": event.reason,
                "code": event.code,
                "ts": _iso(now),
            }
        case ev.ConnectFailed():
            return {"type": "error", "user": None, "text": event.reason, "ts": _iso(now)}
        case ev.LoginQueued():
            if event.position == 0:
                ahead = _("you are next")
            else:
                ahead = _("{count} ahead of you").format(count=event.position)
            return {
                "type": "system",
                "user": None,
                "ts": _iso(now),
                "state": "queued",
                "position": event.position,
                "text": _("waiting for the server: {place}").format(place=ahead),
            }
        case ev.LoginRetrying():
            return {
                "type": "system",
                "user": None,
                "ts": _iso(now),
                "state": "reconnecting",
                "code": event.code,
                "text": _("login refused for now ({reason}); retrying in {seconds} s").format(
                    reason=event.reason, seconds=f"{event.retry_in_s:.0f}"
                ),
            }
        case ev.ServerKeyChanged():
            return {
                "type": "error",
                "user": None,
                "ts": _iso(now),
                "expected": event.expected,
                "actual": event.actual,
                "text": _(
                    "the server's key has changed: expected {expected}, got {actual}. "
                    "Refusing to send the password. If the server's key was replaced on purpose, "
                    "run again with --accept-new-server-key"
                ).format(expected=event.expected, actual=event.actual),
            }
        case ev.ServerKeyTrusted(first_contact=True):
            return {
                "type": "system",
                "user": None,
                "ts": _iso(now),
                "fingerprint": event.fingerprint,
                "text": _("new server key {fingerprint} pinned on first contact").format(
                    fingerprint=event.fingerprint
                ),
            }
        case ev.LoggedIn():
            if event.resumed:
                text = _("reconnected as {user} to {server}, room {room}")
            elif event.registered:
                text = _("logged in as {user} to {server}, room {room} (new account registered)")
            else:
                text = _("logged in as {user} to {server}, room {room}")
            return {
                "type": "system",
                "user": event.user,
                "ts": _iso(now),
                "room": event.room,
                "text": text.format(user=event.user, server=event.server_name, room=event.room),
            }
        case ev.RelayMoved():
            return {
                "type": "relay",
                "user": None,
                "ts": _iso(now),
                "host": event.host,
                "port": event.port,
                "text": _("moved to {address}").format(address=event.label),
            }
        case ev.StateChanged(state=ev.ConnectionState.RECONNECTING):
            return {
                "type": "system",
                "user": None,
                "ts": _iso(now),
                "state": "reconnecting",
                "detail": event.detail,
                "text": _("connection lost: reconnecting…"),
            }
        case ev.ServerNotice():
            return {"type": "system", "user": None, "ts": _iso(now), "text": event.text}
        case ev.Closed():
            return {
                "type": "system",
                "user": None,
                "ts": _iso(now),
                "state": "closed",
                "reason": event.reason,
                "code": event.code,
                "text": _("disconnected: {reason}").format(reason=event.reason),
            }
        case ev.SearchResults():
            if event.error:
                text = _("search for {query!r} failed: {error}").format(query=event.query, error=event.error)
            else:
                if event.more:
                    found = _(
                        "{count} results for {query!r}, newest first (more matched: add words to narrow it)"
                    )
                else:
                    found = _("{count} results for {query!r}, newest first")
                text = found.format(count=len(event.hits), query=event.query)
            return {
                "type": "search",
                "user": None,
                "ts": _iso(now),
                "room": event.room or None,
                "query": event.query,
                "more": event.more,
                "error": event.error or None,
                "text": text,
                "hits": [
                    {"seq": h.seq, "ts": _iso(h.ts), "user": h.user, "text": h.snippet, "action": h.action}
                    for h in event.hits
                ],
            }
        case ev.HistoryPage():
            if event.error:
                text = _("no history: {error}").format(error=event.error)
            elif not event.messages:
                text = _("no older messages")
            elif event.more:
                text = ngettext(
                    "{count} older message; /history for older ones",
                    "{count} older messages; /history for older ones",
                    len(event.messages),
                ).format(count=len(event.messages))
            else:
                text = ngettext(
                    "{count} older message; that is the beginning",
                    "{count} older messages; that is the beginning",
                    len(event.messages),
                ).format(count=len(event.messages))
            return {
                "type": "history",
                "user": None,
                "ts": _iso(now),
                "room": event.room,
                "more": event.more,
                "error": event.error or None,
                "text": text,
                "messages": [
                    {
                        "seq": e.seq, "ts": _iso(e.ts), "user": e.user, "text": e.text,
                        "action": e.action, "own": e.own,
                    }
                    for e in event.messages
                ],
            }  # fmt: skip
    return _room_record(event, now, me)


# ---- files (docs/protocol.md 21)

#: `progress_printed` value of a transfer whose 100 % line is out (no clock reads that much).
FINISHED = float("inf")

#: File events line mode prints (the --json contract: file_offer, file_progress, file_done, file_failed).
FILE_EVENTS = (ev.FileOffered, ev.FileProgress, ev.FileDone, ev.FileFailed)


#: How an offer names a picture, a sound or a film ("png image"); other types say their subtype alone.
_MEDIA_KINDS = {"image": N_("{kind} image"), "audio": N_("{kind} audio"), "video": N_("{kind} video")}


def kind_word(mime: str, name: str, folder: bool = False) -> str:
    """What a file is, in a word for the offer line: "python", "pdf", "png image", "folder"."""
    if folder:
        return _("folder")
    major, _sep, sub = mime.partition("/")
    sub = sub.removeprefix("x-").split(";")[0].split("+")[0]
    if sub and major in _MEDIA_KINDS:
        return _(_MEDIA_KINDS[major]).format(kind=sub)
    if sub:
        return sub
    suffix = name.rpartition(".")[2] if "." in name else ""
    return suffix.lower() or _("file")


def file_text(event: ev.Event, me: str | None = None) -> str:
    """The line mode sentence of a file event (the app uses the same words)."""
    match event:
        case ev.FileOffered():
            kind = kind_word(event.mime, event.name, event.folder)
            what = f"{event.name} ({human_size(event.size)}, {kind})"
            if me is not None and event.sender == me:
                if event.to:
                    mine = _("you offer {what} to {user} (file {id})")
                else:
                    mine = _("you offer {what} in #{room} (file {id})")
                return mine.format(what=what, user=event.to, room=event.room, id=event.file_id)
            if event.to:
                offer = _("{user} offers you {what} — /accept {id}, /decline {id}")
            else:
                offer = _("{user} offers {what} — /accept {id}, /decline {id}")
            return offer.format(user=event.sender, what=what, id=event.file_id)
        case ev.FileProgress():
            percent = 100 * event.done // event.size if event.size else 100
            parts = [f"{event.name}: {percent}%"]
            if event.rate_bps > 0:
                parts.append(f"{human_size(int(event.rate_bps))}/s")
            if event.eta_s is not None and event.done < event.size:
                parts.append(_("{seconds} s left").format(seconds=math.ceil(event.eta_s)))
            return " ".join(parts)
        case ev.FileDone(direction="down"):
            return _("saved {name} to {path} (verified)").format(name=event.name, path=event.path)
        case ev.FileDone():
            return _("sent {name}: stored on the server (verified)").format(name=event.name)
        case ev.FileFailed(direction="down"):
            return _("{name} not saved: {reason}").format(name=event.name, reason=event.reason)
        case ev.FileFailed():
            return _("{name} not sent: {reason}").format(name=event.name, reason=event.reason)
    return ""


def file_record(
    event: ev.Event, now: float, details: dict[str, Any], me: str | None = None
) -> dict[str, Any]:
    """The --json record of a file event; `details` from `ChatClient.file_details` (size, sha256,
    from, room, to) for the events that do not carry them."""
    rec: dict[str, Any] = {"user": None, "ts": _iso(now), "room": None, "to": None, "from": None}
    rec.update(details)
    match event:
        case ev.FileOffered():
            rec.update(
                type="file_offer", user=event.sender, ts=_iso(event.ts), id=event.file_id, name=event.name,
                size=event.size, sha256=event.sha256, room=None if event.to else event.room, to=event.to,
                mime=event.mime, folder=event.folder, listing=event.listing, own=event.sender == me,
            )  # fmt: skip
            rec["from"] = event.sender
        case ev.FileProgress():
            rec.update(
                type="file_progress", id=event.file_id, name=event.name, direction=event.direction,
                size=event.size, done=event.done, rate=round(event.rate_bps),
                eta=None if event.eta_s is None else round(event.eta_s, 1),
            )  # fmt: skip
        case ev.FileDone():
            rec.update(type="file_done", id=event.file_id, name=event.name, direction=event.direction,
                       path=event.path, sha256=event.sha256)  # fmt: skip
        case ev.FileFailed():
            rec.update(type="file_failed", id=event.file_id, name=event.name, direction=event.direction,
                       reason=event.reason)  # fmt: skip
    rec["text"] = file_text(event, me)
    return rec


#: Continuation lines of a multi-line message are indented, so no line of text passes for an event.
_CONTINUATION = "\n    "


def _lines(text: str) -> str:
    return text.replace("\n", _CONTINUATION)


def _said_elsewhere(event: ev.Event) -> bool:
    """Room news a human line leaves out because another line says it: the ROOM_STATE after a
    change (its ROOM_EVENT was printed), and the ROOM_EVENT of an announcement (the ANNOUNCEMENT
    that follows it says what it now is, or that it was cleared)."""
    match event:
        case ev.RoomState(joined=False):
            return True
        case ev.RoomEvent(action=m.Action.ANNOUNCEMENT_SET):
            return True
    return False


def event_line(event: ev.Event, now: float, me: str, *, several: bool = False) -> str | None:
    """The human line for an event (None: nothing to print). `several`: we are in more than one
    room, so a room's lines carry its name after the time (`14:02:05 #cs101 <alice> hi`)."""
    if _said_elsewhere(event):
        return None
    rec = event_record(event, now, me)
    if rec is None:
        return None
    ts = _hms(event.ts) if hasattr(event, "ts") else _hms(now)
    if several and rec.get("room"):
        ts = f"{ts} #{rec['room']}"
    kind = rec["type"]
    if kind == "announcement":
        return f"{ts} -!- {room_news.describe(event)}" if isinstance(event, ev.Announcement) else None
    if kind == "message":
        user = rec["user"] or me
        hist = _("[history]") + " " if rec.get("history") else ""
        if rec.get("to_ops"):
            hist = _("[to the operators]") + " "
        if rec["action"]:
            return f"{ts} {hist}* {user} {_lines(rec['text'])}"
        return f"{ts} {hist}<{user}> {_lines(rec['text'])}"
    if kind == "private":
        if rec["own"]:
            to = _("[private -> {user}]").format(user=rec["to"])
            return f"{ts} {to} <{me}> {_lines(rec['text'])}"
        held = _(" (held while you were offline)") if rec.get("held") else ""
        if rec.get("to_ops"):
            to = _("[to the operators of #{room}]").format(room=rec["to"])
            return f"{ts} {to} <{rec['user']}> {_lines(rec['text'])}"
        return f"{ts} {_('[private]')} <{rec['user']}> {_lines(rec['text'])}{held}"
    if kind in ("join", "leave", "away"):
        return f"{ts} * {rec['text']}"
    if kind in ("queue", "poll"):
        return "\n".join(f"{ts} -!- {line}" for line in rec["text"].split("\n"))
    if kind in ("rooms", "room_event", "tally", "part", "room"):
        return f"{ts} -!- {_lines(rec['text'])}"
    if kind == "error":
        return f"{ts} -!- " + _("error: {text}").format(text=rec["text"])
    if kind == "search":
        lines = [f"{ts} -!- {rec['text']}"]
        for hit in rec["hits"]:
            when = _hms(datetime.fromisoformat(hit["ts"]).timestamp())
            who = f"* {hit['user']}" if hit["action"] else f"<{hit['user']}>"
            lines.append(f"{when} [#{hit['seq']}] {who} {' '.join(hit['text'].split())}")
        return "\n".join(lines)
    if kind == "history":
        lines = []
        for entry in rec["messages"]:
            when = _hms(datetime.fromisoformat(entry["ts"]).timestamp())
            who = f"* {entry['user']}" if entry["action"] else f"<{entry['user']}>"
            lines.append(f"{when} {_('[history]')} {who} {_lines(entry['text'])}")
        lines.append(f"{ts} -!- {rec['text']}")
        return "\n".join(lines)
    return f"{ts} -!- {_lines(rec['text'])}"  # a second line (the seats of /who) is indented




#: Events after which the session is over and the exit status is 1 (a refused re-login that the core
#: survives is the exception: see `_LineSession.on_event`).
FATAL = (ev.LoginRefused, ev.ConnectFailed, ev.ServerKeyChanged)

#: Exit statuses, as the README promises them.
EXIT_LEFT = 0  # logged in, then left (QUIT, end of input, a signal)
EXIT_FAILED = 1  # the login failed, the server never answered, or the session ended in an error


#: What a script may use to tie events to its lines: the line number, or its own id.
Ref = int | float | str


class InputError(ValueError):
    """A JSON input line that cannot be used; the message says why, in one line. `ref`: the line's
    own ref when it could be read, else its line number."""

    def __init__(self, message: str, ref: Ref) -> None:
        super().__init__(message)
        self.ref = ref


@dataclass(frozen=True, slots=True)
class InputLine:
    """One stdin line, ready to submit: its `ref` (the line number, or the one the script gave)."""

    ref: Ref
    text: str
    from_json: bool = False


def parse_input(line: str, number: int, *, as_json: bool) -> InputLine:
    """Turn stdin line `number` (1-based) into what to submit.

    In JSON mode a line that starts with `{` is an object `{"ref": ..., "text": ...}` (`ref` optional:
    the line number is used without it; `text` is typed text, commands included). Any other line is
    typed text, as in plain mode.

    Raises:
        InputError: the line starts with `{` but is not such an object.
    """
    text = line.rstrip("\r\n")
    if not as_json or not text.lstrip().startswith("{"):
        return InputLine(number, text)
    try:
        obj = json.loads(text)
    except ValueError as exc:
        text = _("line {number} is not valid JSON ({error}): nothing sent").format(number=number, error=exc)
        raise InputError(text, number) from None
    if not isinstance(obj, dict):
        raise InputError(
            _("line {number} is not a JSON object: nothing sent").format(number=number), number
        )
    ref = obj.get("ref", number)
    if ref is None:
        ref = number
    if (
        isinstance(ref, bool)
        or not isinstance(ref, (int, float, str))
        or (isinstance(ref, float) and not math.isfinite(ref))  # NaN cannot be echoed as JSON
    ):
        raise InputError(
            _('line {number}: "ref" must be a string or a number: nothing sent').format(number=number), number
        )
    body = obj.get("text")
    if not isinstance(body, str):
        raise InputError(
            _('line {number}: a JSON line needs "text" (a string): nothing sent').format(number=number), ref
        )
    return InputLine(ref, body, from_json=True)


class _LineSession:
    """The state of one line-mode run: which line caused which event, and how the run ends."""

    def __init__(self, client: ChatClient, *, as_json: bool, out: TextIO) -> None:
        self.client = client
        self.as_json = as_json
        self.out = out
        # JSON read through a pipe in a legacy encoding (Windows' cp1252, an ASCII locale): escape
        # what it cannot carry (\uXXXX is still exact JSON) instead of losing or failing on it.
        encoding = (getattr(out, "encoding", None) or "utf-8").lower().replace("-", "").replace("_", "")
        self.ascii_json = encoding not in ("utf8", "utf8sig", "utf16", "utf32")
        self.logged_in = False
        self.failed = False
        self.reconnecting = False  # "connection lost" was said and "reconnected" was not yet
        self.ready = asyncio.Event()  # logged in, or over: input may be taken now
        self.refs_by_id: dict[int, Ref] = {}  # local_id of a queued message -> its line's ref
        self.who_refs: deque[Ref] = deque()  # refs of /who lines not answered yet, oldest first
        self.refs_by_request: dict[int, Ref] = {}  # room request id -> its line's ref
        self.typed_offline: dict[int, float] = {}  # local_id -> when typed, for lines typed offline
        self.progress_printed: dict[tuple[str, int], float] = {}  # plain: one progress line a second
        self.refs_by_transfer: dict[tuple[str, int], Ref] = {}  # (direction, id) -> the /send or /accept

    # ------------------------------------------------------------ output

    def write(self, rec: dict[str, Any], ts: float | None = None) -> None:
        text = json.dumps(rec, ensure_ascii=self.ascii_json) if self.as_json else self._human(rec, ts)
        self.out.write(text + "\n")
        self.out.flush()

    def _human(self, rec: dict[str, Any], ts: float | None) -> str:
        when = _hms(ts if ts is not None else self.client._clock())
        if rec["type"] == "error":
            return f"{when} -!- " + _("error: {text}").format(text=rec["text"])
        return f"{when} -!- {rec['text']}"

    def local(self, text: str, ref: Ref | None, *, error: bool = False, room: str | None = None) -> None:
        """A line from the client itself (help, a refused command), tied to the input line `ref`;
        `room`: the room the line was about, if any."""
        rec: dict[str, Any] = {
            "type": "error" if error else "system",
            "user": None,
            "text": text,
            "ts": _iso(self.client._clock()),
            "room": room,
        }
        if ref is not None:
            rec["ref"] = ref
        self.write(rec)

    def emit(self, event: ev.Event, ref: Ref | None, typed: float | None = None) -> None:
        """Print `event`; `typed`: when our message was typed, if that was while offline (it reached
        the room only later, so its own time says little about when it was said)."""
        now = self.client._clock()
        if isinstance(event, FILE_EVENTS):
            self._emit_file(event, ref, now)
            return
        if not self.as_json:
            line = event_line(event, now, self.client.user, several=len(self.client.rooms) > 1)
            if line is not None:
                if typed is not None:
                    line += _(" (typed {time}, while offline)").format(time=_hms(typed))
                self.out.write(line + "\n")
                self.out.flush()
            return
        rec = event_record(event, now, self.client.user)
        if rec is not None:
            if typed is not None:
                rec["typed_ts"] = _iso(typed)
            if ref is not None:
                rec["ref"] = ref
            self.write(rec)

    def _emit_file(self, event: ev.Event, ref: Ref | None, now: float) -> None:
        direction = "down" if isinstance(event, ev.FileOffered) else getattr(event, "direction", "down")
        file_id: int = getattr(event, "file_id", 0)
        if isinstance(event, ev.FileProgress) and not self.as_json:
            key = (direction, file_id)
            last = self.progress_printed.get(key)
            if event.done < event.size and last is not None and now - last < 1.0:
                return  # --plain: at most one progress line a second (the last one always)
            if event.done >= event.size and last == FINISHED:
                return  # the last one once: a small file can report it from two places
            self.progress_printed[key] = FINISHED if event.done >= event.size else now
        rec = file_record(event, now, self.client.file_details(direction, file_id), self.client.user)
        if ref is not None:
            rec["ref"] = ref
        if self.as_json:
            self.write(rec)
            return
        when = _hms(now)
        if isinstance(event, ev.FileFailed):
            self.out.write(f"{when} -!- " + _("error: {text}").format(text=rec["text"]) + "\n")
        else:
            self.out.write(f"{when} -!- {rec['text']}\n")
        self.out.flush()

    # ------------------------------------------------------------ events

    def on_event(self, event: ev.Event) -> None:
        ref: Ref | None = None
        typed: float | None = None
        match event:
            case ev.MessageDelivered() | ev.MessageFailed():
                ref = self.refs_by_id.pop(event.local_id, None)
                typed = self.typed_offline.pop(event.local_id, None)
            case ev.PresenceUpdated(requested=True):
                ref = self.who_refs.popleft() if self.who_refs else None
            case ev.RequestFailed() | ev.RoomList():
                ref = self.refs_by_request.pop(event.request_id, None)
            case ev.FileProgress():
                ref = self.refs_by_transfer.get((event.direction, event.file_id))
            case ev.FileDone() | ev.FileFailed():
                ref = self.refs_by_transfer.pop((event.direction, event.file_id), None)
            case ev.LoggedIn():
                self.logged_in = True
                self.reconnecting = False
                self.ready.set()
            case ev.StateChanged(state=ev.ConnectionState.RECONNECTING):
                self.reconnecting = True
            case ev.StateChanged(state=ev.ConnectionState.CONNECTED) if self.reconnecting:
                # The server answered again without a new login: say so, once.
                self.reconnecting = False
                self.write({
                    "type": "system", "user": None, "ts": _iso(self.client._clock()),
                    "state": "connected", "text": "reconnected",
                })  # fmt: skip
                return
            case ev.LoginRefused(code=ErrorCode.LOGIN_THROTTLED) if self.logged_in:
                pass  # a re-login held back: fatal only if the core gives up (a Closed follows)
            case ev.LoginRefused() | ev.ConnectFailed() | ev.ServerKeyChanged():
                self.failed = True
            case ev.Closed():
                said_why = self.failed
                if event.code:
                    self.failed = True
                self.ready.set()
                if said_why:  # the error line said why already: do not say it twice
                    rec = event_record(event, self.client._clock()) or {}
                    rec["text"] = "disconnected"
                    self.write(rec)
                    return
        self.emit(event, ref, typed)
        if isinstance(event, ev.Announcement) and event.text:
            # Printed: the user has been shown it, which the operators' read tally counts (18.10).
            self.client.announcement_seen(event.room, event.announcement_id)
        if isinstance(event, ev.LoggedIn) and event.resumed and self.who_refs:
            self._ask_again()

    def _ask_again(self) -> None:
        """/who lines sent on the session that was lost were never answered: ask again for them, so
        that each still gets exactly one answer, in order."""
        for _unused in range(len(self.who_refs)):
            if not self.client.submit("/who").who:
                while self.who_refs:
                    self.local(_("/who lost in the reconnection: ask again"), self.who_refs.popleft(),
                               error=True)  # fmt: skip
                return

    # ------------------------------------------------------------ input

    def submit(self, item: InputLine) -> bool:
        """Send one input line; True when it was a quit."""
        result = self.client.submit(item.text)
        if result.queue is not None:
            self.emit(result.queue, item.ref)  # /queue: the "queue" record, or its lines
        else:
            for text in result.local_lines:
                self.local(text, item.ref, error=result.error, room=result.room)
        typed = self.client._clock()
        for local_id in result.local_ids:
            self.refs_by_id[local_id] = item.ref
            if self.reconnecting:
                self.typed_offline[local_id] = typed
        if result.who:
            self.who_refs.append(item.ref)
        if result.transfer is not None:
            self.refs_by_transfer[result.transfer] = item.ref
        if result.request_id and self.as_json:
            self.refs_by_request[result.request_id] = item.ref
            if len(self.refs_by_request) > 256:  # answered in silence (a JOIN that worked): forget
                pending = self.client.conn.request_pending
                self.refs_by_request = {i: r for i, r in self.refs_by_request.items() if pending(i)}
        if item.from_json and not item.text.strip():
            self.local(_("empty text: nothing sent"), item.ref, error=True)  # a script waits for an answer
        return result.quit

    @property
    def exit_code(self) -> int:
        return EXIT_LEFT if self.logged_in and not self.failed else EXIT_FAILED


async def run_plain(
    client: ChatClient, *, as_json: bool, out: TextIO | None = None, stdin: TextIO | None = None
) -> int:
    """Run line mode: log in, then send each stdin line, until QUIT, end of input or a fatal event.

    `out` and `stdin` default to the process's at the time of the call. Returns the exit status: 0
    when we logged in and then left, 1 when the login failed, the server never answered, or the
    session ended in an error.
    """
    out = sys.stdout if out is None else out
    stdin = sys.stdin if stdin is None else stdin
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    session = _LineSession(client, as_json=as_json, out=out)

    def reader() -> None:
        try:
            for line in stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
        except (OSError, ValueError, UnicodeDecodeError):
            pass
        loop.call_soon_threadsafe(lines.put_nowait, None)

    async def pump_events() -> None:
        async for event in client.events():
            session.on_event(event)

    async def pump_input() -> None:
        # Log in first: a script's lines wait (in order) until the server has accepted us, and end
        # of input before that does not count as having left. With `--room`, until those rooms
        # are joined too: the lines are meant for them.
        await session.ready.wait()
        if not session.logged_in:
            return
        await client.ready.wait()
        number = 0
        while True:
            line = await lines.get()
            if line is None:
                # End of input: everything typed must arrive before we leave.
                await client.wait_drained()
                client.quit()
                return
            number += 1
            try:
                item = parse_input(line, number, as_json=as_json)
            except InputError as exc:
                session.local(str(exc), exc.ref, error=True)
                continue
            if session.submit(item):
                return

    threading.Thread(target=reader, name="stdin", daemon=True).start()
    events_task = asyncio.create_task(pump_events())
    input_task = asyncio.create_task(pump_input())
    try:
        await events_task
    finally:
        input_task.cancel()
    return session.exit_code
