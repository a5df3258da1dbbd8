"""Pure helpers for how chat looks: sender colours, mentions and times. No Textual, no I/O.

They live apart from the widgets so that their rules (the same colour for a name on every client, what
counts as a mention) can be tested without running an app.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, tzinfo

#: How many sender colours `labchat.tcss` defines (`message-log--nick-0` ... `-11`).
NICK_COLOURS = 12

#: Characters that may appear in a user name (protocol/messages.py's rule); a mention must not be
#: glued to more of them, or "al" would be mentioned by "alice".
_NAME_CHAR = r"[A-Za-z0-9_-]"


def nick_colour(name: str) -> int:
    """The colour slot of a sender, the same on every client and every run.

    Python's `hash()` is salted per process, so it would give a name a different colour in each
    terminal; a digest of the casefolded name does not (and 'Alice' and 'alice' are one account).
    """
    digest = hashlib.sha256(name.casefold().encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % NICK_COLOURS


def mention_pattern(name: str) -> re.Pattern[str]:
    """A regex finding `name` (optionally as `@name`) as a whole word, in any case."""
    return re.compile(rf"(?<!{_NAME_CHAR})@?{re.escape(name)}(?!{_NAME_CHAR})", re.IGNORECASE)


def mentions(text: str, name: str) -> bool:
    """True when `text` mentions the user `name`."""
    return bool(name) and mention_pattern(name).search(text) is not None


def clock_time(ts: float, tz: tzinfo | None = None) -> str:
    """HH:MM for a Unix time, in `tz` (None: the local zone). Tests pass UTC for stable snapshots."""
    return datetime.fromtimestamp(ts, tz).strftime("%H:%M")


def format_rtt(rtt_s: float | None) -> str:
    """A round-trip time the way people read it: '<1 ms', '12 ms', '1.3 s'."""
    if rtt_s is None:
        return ""
    if rtt_s < 0.001:
        return "<1 ms"
    if rtt_s < 1:
        return f"{rtt_s * 1000:.0f} ms"
    return f"{rtt_s:.1f} s"
