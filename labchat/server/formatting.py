"""Small formatting helpers the relay's modules share: milliseconds, addresses and log text."""

from __future__ import annotations

from ..i18n import ngettext
from ..protocol.channel import Address
from ..protocol.text import neutralize

#: Log lines show at most this much of a message, then how long it was: a 900-byte line, or a flood
#: of them, must not drown the operator's terminal.
LOG_TEXT_CHARS = 200


def _ms(now: float) -> int:
    return int(now * 1000)


def _fmt(addr: Address) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _excerpt(text: str) -> str:
    """At most `LOG_TEXT_CHARS` of a user's text for the log, saying how long the whole was."""
    if len(text) <= LOG_TEXT_CHARS:
        return text
    whole = ngettext("{count} char", "{count} chars", len(text)).format(count=len(text))
    return f"{text[:LOG_TEXT_CHARS]}… ({whole})"


def _escape(text: str) -> str:
    """Log lines go through Rich markup: user text must not be able to style (or hide) itself."""
    return neutralize(text).replace("[", "\\[")
