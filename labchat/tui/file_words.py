"""The words the app shows for files (protocol section 21): the same sentences line mode prints.

"alice offers lab3.py (4.2 KB, python)", "lab3.py: 42% 1.2 MB/s 3 s left", "saved lab3.py to … (verified)".
Kept apart from the widgets so a card, a log line and a test all say one thing.
"""

from __future__ import annotations

import math

from ..client.core import human_size
from ..client.plain import kind_word
from ..protocol import events as ev


def what(event: ev.FileOffered) -> str:
    """`lab3.py (4.2 KB, python)`: the name and what to expect before accepting it."""
    return f"{event.name} ({human_size(event.size)}, {kind_word(event.mime, event.name, event.folder)})"


def offer_title(event: ev.FileOffered, me: str | None = None) -> str:
    """The head of an offer: who offers what (to us alone: "offers you")."""
    if me is not None and event.sender == me:
        where = f"to {event.to}" if event.to else f"in #{event.room}"
        return f"you offer {what(event)} {where}"
    you = " you" if event.to else ""
    return f"{event.sender} offers{you} {what(event)}"


def offer_line(event: ev.FileOffered, me: str | None = None) -> str:
    """The log line of an offer: its head and the commands that answer it."""
    title = offer_title(event, me)
    if me is not None and event.sender == me:
        return f"{title} (file {event.file_id})"
    return f"{title} — /accept {event.file_id}, /decline {event.file_id}"


def progress_words(event: ev.FileProgress) -> str:
    """`42% 1.2 MB/s 3 s left`: how far, how fast, how long still."""
    percent = 100 * event.done // event.size if event.size else 100
    parts = [f"{percent}%"]
    if event.rate_bps > 0:
        parts.append(f"{human_size(int(event.rate_bps))}/s")
    if event.eta_s is not None and event.done < event.size:
        parts.append(f"{math.ceil(event.eta_s)} s left")
    return " ".join(parts)


def done_line(event: ev.FileDone) -> str:
    """A finished transfer: where a download was saved, or that an upload is stored."""
    if event.direction == "down":
        return f"saved {event.name} to {event.path} (verified)"
    return f"sent {event.name}: stored on the server (verified)"


def failed_line(event: ev.FileFailed) -> str:
    """A transfer that ended without the file, and why."""
    verb = "not saved" if event.direction == "down" else "not sent"
    return f"{event.name} {verb}: {event.reason}"
