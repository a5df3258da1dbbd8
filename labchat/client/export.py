"""`/export [PATH]`: a room's transcript as this client can see it (docs/protocol.md 20.6).

What goes in: the room's stored messages since the class session started (or, when this client did
not see it start, the last `DEFAULT_HOURS` hours), fetched with HISTORY like `/history`; the lines
said "to the operators" in quiet mode that this client sent or, as an operator, received (they are
not in the room's history); and, for an operator, the polls and the help queue's news it received.
The rendering is the server's own (`labchat.transcript`), so `/export` and `labchat-admin
export-room` write the same documents.

Everything here is pure (events in, a `Transcript` out) except `write`, which writes the two files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from .. import transcript as tr
from ..i18n import _
from ..protocol import events as ev
from ..protocol import messages as m

#: How far back `/export` reaches when this client did not see the session start: what
#: `labchat-admin export-room` covers when no session was started.
DEFAULT_HOURS = 24
#: At most this many history pages (of 100) are fetched for one transcript.
MAX_PAGES = 100


def _ms(ts: float) -> int:
    return round(ts * 1000)


def base_path(typed: str | None, room: str, now: float) -> Path:
    """Where the two files go, without their suffix: PATH as typed (a '.md' or '.html' at its end
    dropped; '~' expanded), or `ROOM-YYYY-MM-DD` in the current directory, as `labchat-admin
    export-room` names them."""
    if not typed:
        return Path(f"{room}-{datetime.fromtimestamp(now).strftime('%Y-%m-%d')}")
    path = Path(typed).expanduser()
    if path.suffix.lower() in (".md", ".html", ".htm", ".markdown"):
        path = path.with_suffix("")
    return path


@dataclass(slots=True)
class ToOps:
    """A line said "to the operators" in quiet mode (ours, or a student's to us)."""

    ts: float
    user: str
    text: str
    action: bool = False


def hand_log(news: tuple[ev.RoomEvent, ...], seats: dict[str, str]) -> tuple[tr.Hand, ...]:
    """The help queue's log from its ROOM_EVENTs: one entry per raised hand, with who took it
    and when it came down (0: still up). `seats`: name -> seat, as the queue or /who showed them."""
    open_hands: dict[str, int] = {}
    log: list[tr.Hand] = []
    for event in news:
        key = m.name_key(event.target)
        at = _ms(event.ts)
        if event.action == m.Action.HAND_RAISED:
            if key in open_hands:  # a new question, same place
                i = open_hands[key]
                log[i] = replace(log[i], question=event.value or log[i].question)
                continue
            open_hands[key] = len(log)
            log.append(tr.Hand(event.target, seats.get(event.target, ""), event.value, at))
        elif key in open_hands:
            i = open_hands[key]
            if event.action == m.Action.HAND_TAKEN:
                log[i] = replace(log[i], taken_by=event.actor, taken_ms=at)
            else:  # HAND_LOWERED
                log[i] = replace(log[i], done_ms=at, done_by=event.actor)
                del open_hands[key]
    return tuple(log)


def poll_result(poll: ev.PollShown, seen_at: float | None) -> tr.PollResult:
    """A poll as the transcript shows it (counts empty when this client never saw them)."""
    return tr.PollResult(
        _ms(seen_at or 0.0), poll.by, poll.question, poll.options, poll.counts, poll.voters,
        poll.anonymous, poll.closed,
    )  # fmt: skip


def build(
    room: str,
    since: float,
    until: float,
    *,
    topic: str,
    messages: list[ev.MessageReceived],
    to_ops: list[ToOps],
    polls: list[tr.PollResult],
    hands: tuple[tr.Hand, ...],
) -> tr.Transcript:
    """The transcript of `room` from `since` to `until` (Unix seconds): the messages in that span,
    each once (pages may overlap), in order."""
    seen: set[int] = set()
    said: list[tr.Said] = []
    for msg in sorted(messages, key=lambda e: e.seq):
        if msg.seq in seen or msg.ts < since:
            continue
        seen.add(msg.seq)
        said.append(tr.Said(_ms(msg.ts), msg.user, msg.text, msg.action))
    said += [tr.Said(_ms(o.ts), o.user, o.text, o.action, True) for o in to_ops if o.ts >= since]
    said.sort(key=lambda s: s.ts_ms)
    return tr.Transcript(
        room, _ms(since), _ms(until), topic, tuple(said), (),
        tuple(p for p in polls if p.ts_ms >= _ms(since) or not p.ts_ms), hands,
    )  # fmt: skip


_UNSAFE = re.compile(r"[\x00-\x1f]")


def write(base: Path, transcript: tr.Transcript) -> tuple[Path, Path]:
    """Write BASE.md and BASE.html. Raises OSError (the caller says it in one line)."""
    if _UNSAFE.search(str(base)):
        raise OSError(_("no control characters in a file name: {name!r}").format(name=str(base)))
    md, page = base.with_name(base.name + ".md"), base.with_name(base.name + ".html")
    md.write_text(tr.to_markdown(transcript), encoding="utf-8")
    page.write_text(tr.to_html(transcript), encoding="utf-8")
    return md, page
