"""A room's transcript as Markdown and as HTML (docs/protocol.md 20.6): its messages, the files
offered, the polls with their results and the help queue's log.

Pure rendering: data in (the dataclasses below), text out; no I/O, no clock. Two writers use it:
`labchat-admin export-room` (server/transcript_export.py, from the server's database) and the client's
`/export` (from what the client has seen). Both build a `Transcript` and call `to_markdown` and
`to_html`:

    t = Transcript("cs101", since_ms, until_ms, topic="Lab 3",
                   messages=(Said(ts_ms, "budi", "hi"), ...), files=(Offered(ts_ms, "ana", "a.py", 812),),
                   polls=(PollResult(ts_ms, "teacher", "Done?", ("yes", "no"), (20, 3), 23),),
                   hands=(Hand("budi", "PC-14", "segfault", raised_ms, "teacher", taken_ms, done_ms),))
    Path("cs101.md").write_text(to_markdown(t)); Path("cs101.html").write_text(to_html(t))

User text is never trusted: in Markdown, `<`, `>` and `&` are escaped outside code blocks (a viewer
would render HTML), and in HTML everything is escaped; fenced code blocks (```) are kept as code.
Times are shown in `tz` (the local zone when None). The words around the room's own text (headings,
"offered the file", "still waiting") are in the active language (`labchat.i18n`); a translation is
trusted text, but is escaped like the rest so that it can never break the page.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

from .i18n import N_, _, current_language, ngettext

__all__ = ["Hand", "Offered", "PollResult", "Said", "Transcript", "to_html", "to_markdown"]


@dataclass(frozen=True, slots=True)
class Said:
    """A message in the room. `action`: a /me line; `to_ops`: sent to the operators in quiet mode."""

    ts_ms: int
    user: str
    text: str
    action: bool = False
    to_ops: bool = False


@dataclass(frozen=True, slots=True)
class Offered:
    """A file offered to the room."""

    ts_ms: int
    user: str
    name: str
    size: int


@dataclass(frozen=True, slots=True)
class PollResult:
    """A poll and its result. `counts` is empty when the writer does not know them (a student's
    /export of a poll still open)."""

    ts_ms: int
    by: str
    question: str
    options: tuple[str, ...]
    counts: tuple[int, ...] = ()
    voters: int = 0
    anonymous: bool = False
    closed: bool = True


@dataclass(frozen=True, slots=True)
class Hand:
    """One entry of the help queue's log: raised, maybe taken, and done (0: still up)."""

    user: str
    seat: str
    question: str
    raised_ms: int
    taken_by: str = ""
    taken_ms: int = 0
    done_ms: int = 0
    done_by: str = ""


@dataclass(frozen=True, slots=True)
class Transcript:
    """Everything one transcript shows, for the room `room` from `since_ms` to `until_ms`."""

    room: str
    since_ms: int
    until_ms: int
    topic: str = ""
    messages: tuple[Said, ...] = ()
    files: tuple[Offered, ...] = ()
    polls: tuple[PollResult, ...] = ()
    hands: tuple[Hand, ...] = ()


_FENCE = re.compile(r"^```", re.MULTILINE)


def _when(ms: int, tz: tzinfo | None, fmt: str = "%H:%M:%S") -> str:
    return datetime.fromtimestamp(ms / 1000, tz).strftime(fmt)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError


def _segments(text: str) -> list[tuple[bool, str]]:
    """`text` cut at fenced code blocks: (is_code, piece). An unclosed fence runs to the end."""
    out: list[tuple[bool, str]] = []
    code, start = False, 0
    for match in _FENCE.finditer(text):
        piece = text[start : match.start()]
        if code:
            piece = piece.split("\n", 1)[1] if "\n" in piece else ""  # drop the language word
        if piece or code:
            out.append((code, piece))
        code, start = not code, match.end()
    tail = text[start:]
    if code:
        tail = tail.split("\n", 1)[1] if "\n" in tail else ""
    if tail or code:
        out.append((code, tail))
    return out


def _md_text(text: str) -> str:
    parts = []
    for code, piece in _segments(text):
        if code:
            parts.append("\n```\n" + piece.rstrip("\n").replace("```", "ʼʼʼ") + "\n```\n")
        else:
            parts.append(piece.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(parts)


def _md_cell(text: str) -> str:
    return _md_text(text).replace("|", "\\|").replace("\n", " ")


def _timeline(t: Transcript) -> list[Said | Offered | PollResult]:
    """Messages, file offers and polls in time order (stable: equal times keep their kind's order)."""
    items: list[Said | Offered | PollResult] = [*t.messages, *t.files, *t.polls]
    return sorted(items, key=lambda item: item.ts_ms)


#: The help queue table's column heads.
_HAND_HEADS = (N_("Raised"), N_("Student"), N_("Seat"), N_("Question"), N_("Taken by"), N_("Done"))


def _period(t: Transcript, tz: tzinfo | None) -> str:
    since, until = _when(t.since_ms, tz, "%Y-%m-%d %H:%M"), _when(t.until_ms, tz, "%Y-%m-%d %H:%M")
    return _("{since} to {until}").format(since=since, until=until)


def _voted(p: PollResult) -> str:
    return ngettext("{count} voted", "{count} voted", p.voters).format(count=p.voters)


def _result_line(p: PollResult) -> str:
    if not p.counts:
        return _("results not known")
    shown = ", ".join(f"{o} {c}" for o, c in zip(p.options, p.counts, strict=False))
    return f"{shown} ({_voted(p)})" + ("" if p.closed else _(", still open"))


def _poll_head(p: PollResult) -> str:
    """The template of a poll's line, `{question} (anonymous) by {user} at {time}`: each document
    escapes it, then fills in the pieces it escaped its own way."""
    if p.anonymous:
        return _("{question} (anonymous) by {user} at {time}")
    return _("{question} by {user} at {time}")


def to_markdown(t: Transcript, tz: tzinfo | None = None) -> str:
    """The transcript as a Markdown document."""
    out = ["# " + _md_text(_("#{room} — transcript")).format(room=t.room), ""]
    out.append(_md_text(_period(t, tz)))
    if t.topic:
        out += ["", _md_text(_("Topic: {topic}")).format(topic=_md_text(t.topic))]
    out += ["", "## " + _md_text(_("Messages")), ""]
    timeline = _timeline(t)
    if not timeline:
        out.append(_md_text(_("(no messages)")))
    for item in timeline:
        ts = item.ts_ms
        when = _when(ts, tz)
        if isinstance(item, Said):
            who = f"* {item.user}" if item.action else f"<{item.user}>"
            who = who.replace("<", "&lt;").replace(">", "&gt;")
            note = " " + _md_text(_("(to the operators)")) if item.to_ops else ""
            text = _md_text(item.text)
            sep = "\n\n" if "\n" in text else " "
            out.append(f"**{when}** {who}{note}{sep}{text}".rstrip() + "\n")
        elif isinstance(item, Offered):
            offered = _md_text(_("{user} offered the file {name} ({size})")).format(
                user=_md_text(item.user), name=f"`{item.name.replace('`', 'ʼ')}`", size=_size(item.size)
            )
            out.append(f"**{when}** {offered}\n")
        else:
            poll = _md_text(_("poll by {user}: {question} — {results}")).format(
                user=_md_text(item.by), question=_md_text(item.question), results=_md_text(_result_line(item))
            )
            out.append(f"**{when}** {poll}\n")
    if t.polls:
        out += ["## " + _md_text(_("Polls")), ""]
        for number, p in enumerate(t.polls, 1):
            head = _md_text(_poll_head(p)).format(
                question=f"**{_md_text(p.question)}**", user=_md_text(p.by), time=_when(p.ts_ms, tz)
            )
            out.append(f"{number}. {head}")
            for i, option in enumerate(p.options):
                count = f": {p.counts[i]}" if i < len(p.counts) else ""
                out.append(f"   - {_md_text(option)}{count}")
            out.append("   - " + _md_text(_voted(p) if p.counts else _("results not known")))
        out.append("")
    if t.hands:
        out += [
            "## " + _md_text(_("Help queue")),
            "",
            "| " + " | ".join(_md_cell(_(head)) for head in _HAND_HEADS) + " |",
            "|---|---|---|---|---|---|",
        ]
        for h in t.hands:
            at = _md_cell(_("{user} at {time}"))
            taken = at.format(user=_md_cell(h.taken_by), time=_when(h.taken_ms, tz)) if h.taken_by else ""
            done = _when(h.done_ms, tz) if h.done_ms else _md_cell(_("still waiting"))
            out.append(
                f"| {_when(h.raised_ms, tz)} | {_md_cell(h.user)} | {_md_cell(h.seat)}"
                f" | {_md_cell(h.question)} | {taken} | {done} |"
            )
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _html_text(text: str) -> str:
    parts = []
    for code, piece in _segments(text):
        if code:
            parts.append(f"<pre><code>{html.escape(piece.rstrip(chr(10)))}</code></pre>")
        else:
            parts.append(html.escape(piece).replace("\n", "<br>\n"))
    return "".join(parts)


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
    ".t{color:#666;font-variant-numeric:tabular-nums}.u{font-weight:bold}.ops{color:#a60}"
    "pre{background:#f4f4f4;padding:.5em;overflow-x:auto}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
)


def to_html(t: Transcript, tz: tzinfo | None = None) -> str:
    """The transcript as one self-contained HTML page (no scripts, no outside resources)."""
    e = html.escape
    title = _("#{room} — transcript").format(room=t.room)
    out = [
        "<!DOCTYPE html>",
        f'<html lang="{current_language()}"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>{e(_period(t, tz))}</p>",
    ]
    if t.topic:
        out.append(f"<p>{e(_('Topic: {topic}')).format(topic=e(t.topic))}</p>")
    out.append(f"<h2>{e(_('Messages'))}</h2>")
    timeline = _timeline(t)
    if not timeline:
        out.append(f"<p>{e(_('(no messages)'))}</p>")
    for item in timeline:
        ts = item.ts_ms
        when = f'<span class="t">{_when(ts, tz)}</span>'
        if isinstance(item, Said):
            who = f"* {e(item.user)}" if item.action else f"&lt;{e(item.user)}&gt;"
            note = f' <span class="ops">{e(_("(to the operators)"))}</span>' if item.to_ops else ""
            out.append(
                f'<div class="m">{when} <span class="u">{who}</span>{note} {_html_text(item.text)}</div>'
            )
        elif isinstance(item, Offered):
            offered = e(_("{user} offered the file {name} ({size})")).format(
                user=e(item.user), name=f"<code>{e(item.name)}</code>", size=_size(item.size)
            )
            out.append(f'<div class="f">{when} {offered}</div>')
        else:
            poll = e(_("poll by {user}: {question} — {results}")).format(
                user=e(item.by), question=e(item.question), results=e(_result_line(item))
            )
            out.append(f'<div class="p">{when} {poll}</div>')
    if t.polls:
        out.append(f"<h2>{e(_('Polls'))}</h2><ol>")
        for p in t.polls:
            head = e(_poll_head(p)).format(
                question=f"<b>{e(p.question)}</b>", user=e(p.by), time=_when(p.ts_ms, tz)
            )
            out.append(f"<li>{head}<ul>")
            for i, option in enumerate(p.options):
                count = f": {p.counts[i]}" if i < len(p.counts) else ""
                out.append(f"<li>{e(option)}{count}</li>")
            out.append(f"<li>{e(_voted(p) if p.counts else _('results not known'))}</li></ul></li>")
        out.append("</ol>")
    if t.hands:
        heads = "".join(f"<th>{e(_(head))}</th>" for head in _HAND_HEADS)
        out.append(f"<h2>{e(_('Help queue'))}</h2><table><tr>{heads}</tr>")
        for h in t.hands:
            at = e(_("{user} at {time}"))
            taken = at.format(user=e(h.taken_by), time=_when(h.taken_ms, tz)) if h.taken_by else ""
            done = _when(h.done_ms, tz) if h.done_ms else e(_("still waiting"))
            out.append(
                f"<tr><td>{_when(h.raised_ms, tz)}</td><td>{e(h.user)}</td><td>{e(h.seat)}</td>"
                f"<td>{e(h.question)}</td><td>{taken}</td><td>{done}</td></tr>"
            )
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
