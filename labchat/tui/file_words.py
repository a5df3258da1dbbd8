"""The words the app shows for files (protocol section 21): the same sentences line mode prints.

"alice offers lab3.py (4.2 KB, python)", "lab3.py: 42% 1.2 MB/s 3 s left", "saved lab3.py to … (verified)".
Kept apart from the widgets so a card, a log line and a test all say one thing. The whole sentences
come from `client.plain.file_text` (one catalogue entry per sentence, in the user's language); the
card's shorter forms (an offer without its commands, progress without the name) are here.
"""

from __future__ import annotations

import math

from ..client.core import human_size
from ..client.plain import file_text, kind_word
from ..i18n import _
from ..protocol import events as ev


def what(event: ev.FileOffered) -> str:
    """`lab3.py (4.2 KB, python)`: the name and what to expect before accepting it."""
    return f"{event.name} ({human_size(event.size)}, {kind_word(event.mime, event.name, event.folder)})"


def offer_title(event: ev.FileOffered, me: str | None = None) -> str:
    """The head of an offer: who offers what (to us alone: "offers you")."""
    if me is not None and event.sender == me:
        if event.to:
            return _("you offer {what} to {user}").format(what=what(event), user=event.to)
        return _("you offer {what} in #{room}").format(what=what(event), room=event.room)
    if event.to:
        return _("{user} offers you {what}").format(user=event.sender, what=what(event))
    return _("{user} offers {what}").format(user=event.sender, what=what(event))


def offer_line(event: ev.FileOffered, me: str | None = None) -> str:
    """The log line of an offer: its head and the commands that answer it (or, for our own
    offer, its number), worded as line mode words it."""
    return file_text(event, me)


def progress_words(event: ev.FileProgress) -> str:
    """`42% 1.2 MB/s 3 s left`: how far, how fast, how long still."""
    percent = 100 * event.done // event.size if event.size else 100
    parts = [f"{percent}%"]
    if event.rate_bps > 0:
        parts.append(f"{human_size(int(event.rate_bps))}/s")
    if event.eta_s is not None and event.done < event.size:
        parts.append(_("{seconds} s left").format(seconds=math.ceil(event.eta_s)))
    return " ".join(parts)


def done_line(event: ev.FileDone) -> str:
    """A finished transfer: where a download was saved, or that an upload is stored."""
    return file_text(event)


def failed_line(event: ev.FileFailed) -> str:
    """A transfer that ended without the file, and why."""
    return file_text(event)
