"""Line mode (`--plain`, `--json`): stdin lines in, one line per event out. For scripts, bots, screen
readers and tests.

Each event is printed and flushed the moment it arrives, so a pipe sees it at once. Text output is the
IRC look (`14:02:05 <alice> hello`, `14:02:07 * bob joined`); `--json` prints one object per line with
at least `type`, `user`, `text`, `ts` (ISO 8601), and `seq` for room messages.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from datetime import datetime
from typing import Any, TextIO

from ..protocol import events as ev
from .core import ChatClient


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


def _hms(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def _with_away(users: tuple[str, ...], away: dict[str, str]) -> list[str]:
    """Names for the online line, an away one followed by its reason: "bob (away: lunch)"."""
    if not away:
        return list(users)
    out = []
    for user in users:
        if user not in away:
            out.append(user)
        else:
            out.append(f"{user} (away: {away[user]})" if away[user] else f"{user} (away)")
    return out


def event_record(event: ev.Event, now: float) -> dict[str, Any] | None:
    """The JSON object for an event (None for events line mode does not show)."""
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
                "user": None,
                "text": event.text,
                "ts": _iso(event.ts),
                "seq": event.seq,
                "room": event.room,
                "action": event.action,
                "history": False,
                "own": True,
            }
        case ev.MessageDelivered():
            return {
                "type": "private",
                "user": None,
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
            }
        case ev.UserAway():
            because = f": {event.reason}" if event.reason else ""
            return {
                "type": "away",
                "user": event.user,
                "away": event.away,
                "reason": event.reason,
                "text": f"{event.user} is away{because}" if event.away else f"{event.user} is back",
                "ts": _iso(event.ts),
                "room": event.room,
            }
        case ev.UserJoined():
            return {
                "type": "join",
                "user": event.user,
                "text": f"{event.user} joined",
                "ts": _iso(event.ts),
                "room": event.room,
            }
        case ev.UserLeft():
            reason = "" if event.reason == "quit" else f" ({event.reason})"
            return {
                "type": "leave",
                "user": event.user,
                "text": f"{event.user} left{reason}",
                "ts": _iso(event.ts),
                "room": event.room,
                "reason": event.reason,
            }
        case ev.PresenceUpdated():
            return {
                "type": "presence",
                "user": None,
                "users": list(event.users),
                "away": dict(event.away),
                "room": event.room,
                "text": f"{len(event.users)} online: {', '.join(_with_away(event.users, event.away))}",
                "ts": _iso(now),
            }
        case ev.MessageFailed():
            return {
                "type": "error",
                "user": None,
                "text": f"not delivered: {event.reason}: {event.text}",
                "ts": _iso(now),
                "to": event.to,
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
            ahead = "you are next" if event.position == 0 else f"{event.position} ahead of you"
            return {
                "type": "system",
                "user": None,
                "ts": _iso(now),
                "state": "queued",
                "position": event.position,
                "text": f"waiting for the server: {ahead}",
            }
        case ev.LoginRetrying():
            return {
                "type": "system",
                "user": None,
                "ts": _iso(now),
                "state": "reconnecting",
                "code": event.code,
                "text": f"login refused for now ({event.reason}); retrying in {event.retry_in_s:.0f} s",
            }
        case ev.ServerKeyChanged():
            return {
                "type": "error",
                "user": None,
                "ts": _iso(now),
                "expected": event.expected,
                "actual": event.actual,
                "text": (
                    f"the server's key has changed: expected {event.expected}, got {event.actual}. "
                    "Refusing to send the password. If the server's key was replaced on purpose, "
                    "run again with --accept-new-server-key"
                ),
            }
        case ev.ServerKeyTrusted(first_contact=True):
            return {
                "type": "system",
                "user": None,
                "ts": _iso(now),
                "fingerprint": event.fingerprint,
                "text": f"new server key {event.fingerprint} pinned on first contact",
            }
        case ev.LoggedIn():
            what = "reconnected" if event.resumed else "logged in"
            extra = " (new account registered)" if event.registered else ""
            return {
                "type": "system",
                "user": event.user,
                "ts": _iso(now),
                "room": event.room,
                "text": f"{what} as {event.user} to {event.server_name}, room {event.room}{extra}",
            }
        case ev.StateChanged(state=ev.ConnectionState.RECONNECTING):
            return {
                "type": "system",
                "user": None,
                "ts": _iso(now),
                "state": "reconnecting",
                "text": f"connection lost ({event.detail}); reconnecting",
            }
        case ev.ServerNotice():
            return {"type": "system", "user": None, "ts": _iso(now), "text": event.text}
        case ev.Closed():
            return {
                "type": "system",
                "user": None,
                "ts": _iso(now),
                "state": "closed",
                "text": f"disconnected: {event.reason}",
            }
    return None


def event_line(event: ev.Event, now: float, me: str) -> str | None:
    """The human line for an event (None: nothing to print)."""
    rec = event_record(event, now)
    if rec is None:
        return None
    ts = _hms(event.ts) if hasattr(event, "ts") else _hms(now)
    kind = rec["type"]
    if kind == "message":
        user = rec["user"] or me
        hist = "[history] " if rec.get("history") else ""
        if rec["action"]:
            return f"{ts} {hist}* {user} {rec['text']}"
        return f"{ts} {hist}<{user}> {rec['text']}"
    if kind == "private":
        if rec["own"]:
            return f"{ts} [private -> {rec['to']}] <{me}> {rec['text']}"
        held = " (held while you were offline)" if rec.get("held") else ""
        return f"{ts} [private] <{rec['user']}> {rec['text']}{held}"
    if kind in ("join", "leave", "away"):
        return f"{ts} * {rec['text']}"
    if kind == "error":
        return f"{ts} -!- error: {rec['text']}"
    return f"{ts} -!- {rec['text']}"


FATAL = (ev.LoginRefused, ev.ConnectFailed, ev.ServerKeyChanged)


async def run_plain(
    client: ChatClient, *, as_json: bool, out: TextIO = sys.stdout, stdin: TextIO = sys.stdin
) -> int:
    """Run line mode until QUIT, end of input, or a fatal event. Returns the exit code."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def reader() -> None:
        try:
            for line in stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
        except (OSError, ValueError, UnicodeDecodeError):
            pass
        loop.call_soon_threadsafe(lines.put_nowait, None)

    def emit(event: ev.Event) -> None:
        now = client._clock()
        if as_json:
            rec = event_record(event, now)
            text = None if rec is None else json.dumps(rec, ensure_ascii=False)
        else:
            text = event_line(event, now, client.user)
        if text is not None:
            out.write(text + "\n")
            out.flush()

    def local(text: str, *, error: bool = False) -> None:
        now = client._clock()
        if as_json:
            rec = {
                "type": "error" if error else "system",
                "user": None,
                "text": text,
                "ts": _iso(now),
            }
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        else:
            out.write(f"{_hms(now)} -!- {'error: ' if error else ''}{text}\n")
        out.flush()

    exit_code = 0

    async def pump_events() -> None:
        nonlocal exit_code
        async for event in client.events():
            emit(event)
            if isinstance(event, FATAL) or (isinstance(event, ev.Closed) and event.code):
                exit_code = 1

    async def pump_input() -> None:
        while True:
            line = await lines.get()
            if line is None:
                # End of input: everything typed must arrive before we leave.
                await client.wait_drained()
                client.quit()
                return
            result = client.submit(line)
            for text in result.local_lines:
                local(text, error=result.error)
            if result.quit:
                return

    threading.Thread(target=reader, name="stdin", daemon=True).start()
    events_task = asyncio.create_task(pump_events())
    input_task = asyncio.create_task(pump_input())
    try:
        await events_task
    finally:
        input_task.cancel()
    return exit_code
