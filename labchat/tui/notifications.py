"""Desktop notifications through the terminal: the escape sequence a terminal turns into a pop-up.

Two conventions exist and a terminal understands one, the other or neither (then it ignores it):
OSC 777 (`notify;title;body`: rxvt-unicode, foot, Ghostty, WezTerm, Konsole, VTE terminals) and
OSC 9 (the body alone: iTerm2, Windows Terminal, ConEmu, kitty). Sending both would show two pop-ups
where a terminal knows both, so the terminal's own name picks one, OSC 777 when it is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Terminals (as `TERM_PROGRAM` or `WT_SESSION` name them) that want OSC 9.
OSC9_TERMINALS = frozenset({"iTerm.app", "WindowsTerminal", "ConEmu", "kitty"})

#: Longest body shown: a notification is a glance, not the message.
MAX_BODY_CHARS = 200


def _clean(text: str) -> str:
    """No control characters (they would end the sequence early) and no `;` in OSC 777's fields."""
    return "".join(" " if ord(c) < 32 or 0x7F <= ord(c) < 0xA0 else c for c in text)


def desktop_notification(title: str, body: str, environ: Mapping[str, str]) -> str:
    """The escape sequence that asks this terminal for a desktop notification."""
    body = _clean(body)
    if len(body) > MAX_BODY_CHARS:
        body = body[: MAX_BODY_CHARS - 1] + "…"
    program = environ.get("TERM_PROGRAM", "")
    if "WT_SESSION" in environ:
        program = "WindowsTerminal"
    if environ.get("TERM", "").startswith("xterm-kitty"):
        program = "kitty"
    if program in OSC9_TERMINALS:
        return f"\x1b]9;{_clean(title)}: {body}\x07"
    return f"\x1b]777;notify;{_clean(title).replace(';', ',')};{body.replace(';', ',')}\x07"
