"""Text rules shared by both ends: splitting long input, and making network text safe for a terminal.

A message is at most `MAX_TEXT_BYTES` of UTF-8. Longer input is split into consecutive messages, as IRC
clients do, preferring to break at a space and never inside a character.

Anything that arrives from the network is shown only after `neutralize`: a terminal acts on control
characters (ESC starts a sequence that can move the cursor, rewrite the title, or worse), so every C0/C1
control and DEL is replaced by a visible stand-in before it reaches a screen.
"""

from __future__ import annotations

import re

from .messages import MAX_LONG_TEXT_BYTES, MAX_TEXT_BYTES

# C0 controls, DEL, C1 controls, and the bidirectional overrides that can make text read backwards.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    return "\ufffd"


def neutralize(text: str) -> str:
    """Replace every control character with a visible stand-in (caret notation for C0, e.g. ESC -> ^[)."""
    if text.isprintable() or _CONTROL_RE.search(text) is None:
        # isprintable() is False for every character the pattern matches (controls are category Cc,
        # the bidi overrides Cf), and is the cheaper test: it runs twice per message received.
        return text
    return _CONTROL_RE.sub(_visible, text)


# The same, less the newline: a chat text may have several lines (a long message, a pasted trace).
_CONTROL_TEXT_RE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def neutralize_text(text: str) -> str:
    """`neutralize` for a message's text, which keeps its line breaks: CR LF becomes LF, a tab four
    spaces, and every other control character a visible stand-in. Names and server lines stay on
    one line (`neutralize`); whoever prints a text line by line must indent its continuation lines,
    so that a line of text can never pass for an event of its own."""
    if text.isprintable():
        return text
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    if "\t" in text:
        text = text.replace("\t", "    ")
    if _CONTROL_TEXT_RE.search(text) is None:
        return text
    return _CONTROL_TEXT_RE.sub(_visible, text)


def over_limit(text: str, limit: int = MAX_TEXT_BYTES) -> bool:
    """`utf8_len(text) > limit`, without encoding the text in the usual cases: a character is 1 to 4
    bytes, so a text of more than `limit` characters is over and one of at most `limit // 4` is not.
    It runs for every message the server commits."""
    n = len(text)
    if n > limit:
        return True
    if n <= limit // 4:
        return False
    return utf8_len(text) > limit


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def split_text(text: str, limit: int = MAX_TEXT_BYTES) -> list[str]:
    """Split `text` into pieces of at most `limit` UTF-8 bytes, breaking at the last space when it can.

    Joining the pieces with the spaces they were split at gives back the original text.
    """
    if utf8_len(text) <= limit:
        return [text] if text else []
    pieces: list[str] = []
    rest = text
    while utf8_len(rest) > limit:
        # Longest prefix (in characters) that fits the byte limit.
        lo, hi = 0, len(rest)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if utf8_len(rest[:mid]) <= limit:
                lo = mid
            else:
                hi = mid - 1
        cut = lo
        space = rest.rfind(" ", 0, cut + 1)
        if space > cut // 2:
            pieces.append(rest[:space])
            rest = rest[space + 1 :]
        else:
            pieces.append(rest[:cut])
            rest = rest[cut:]
    if rest:
        pieces.append(rest)
    return pieces


def truncate_utf8(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes of `text`, cut on a character boundary."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def split_parts(text: str, limit: int = MAX_TEXT_BYTES) -> list[str]:
    """Cut a long message into parts of at most `limit` UTF-8 bytes, on character boundaries only.

    Unlike `split_text` nothing is dropped or moved: the parts of one message are joined back exactly
    (`"".join(parts) == text`), spaces and newlines included (docs/protocol.md section 15.2).
    """
    parts: list[str] = []
    data = text.encode("utf-8")
    start = 0
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1  # a UTF-8 continuation byte: the character starts before the cut
        parts.append(data[start:end].decode("utf-8"))
        start = end
    return parts


def long_preview(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    """What a client that cannot read long messages is sent instead: the start, and how much is missing.

    The result fits `limit` bytes, so it travels as one ordinary MESSAGE or PRIVATE.
    """
    size = utf8_len(text)
    if size <= limit:
        return text
    # The suffix names the bytes left out, which depends on the head's length: size the suffix for
    # the largest count it can show, then cut the head to what is left.
    suffix_room = utf8_len(f" … [{MAX_LONG_TEXT_BYTES * 4} more bytes: update labchat to read it]")
    head = truncate_utf8(text, limit - suffix_room)
    return f"{head} … [{size - utf8_len(head)} more bytes: update labchat to read it]"
