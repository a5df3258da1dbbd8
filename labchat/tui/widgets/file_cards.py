"""File cards: each offer and transfer as a small card above the input line (protocol section 21).

An offer shows who offers what with Accept / Decline; once accepted (or for our own upload) a progress
bar with the rate and the time left; at the end "saved to …" with Open for a small text file, or why
it failed. The log is a virtual list of rendered rows (see message_log.py) that cannot hold buttons, so
the cards live in this tray, as the uploads tray of Slack does, while the log keeps a line of each step.

The tray never talks to the network: a button posts `FileCard.Chosen`, and the room screen runs the
same typed command (/accept 7, /decline 7, /open 7) the user could have typed.
"""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Label, ProgressBar

from ...i18n import _
from ...protocol import events as ev
from .. import file_words
from ..screens.file_viewer import view_problem

#: A card's key: ("down", the server's file id) for an offer to us, ("up", the local id) for ours.
CardKey = tuple[str, int]


class FileCard(Vertical):
    """One offer or transfer; `state` is "offered", "accepted", "moving", "saved", "sent" or "failed"."""

    class Chosen(Message):
        """A button of a card was pressed: `action` is "accept", "decline", "open" or "dismiss"."""

        def __init__(self, card: FileCard, action: str) -> None:
            super().__init__()
            self.card = card
            self.action = action

    def __init__(self, key: CardKey, title: str, *, offered: bool) -> None:
        super().__init__(classes="file-card")
        self.key = key
        self.title = title
        self.state = "offered" if offered else "moving"
        self.path: Path | None = None
        self.status = ""
        self.done_bytes = 0
        self.total_bytes = 1
        self._ready = False  # composed and mounted: its parts can be shown

    @property
    def file_id(self) -> int:
        return self.key[1]

    def compose(self) -> ComposeResult:
        yield Label(self.title, classes="file-title")
        with Horizontal(classes="file-row"):
            yield ProgressBar(total=100, show_percentage=False, show_eta=False, classes="file-bar")
            yield Label("", classes="file-status")
            yield Button(_("Accept"), variant="primary", compact=True, classes="file-accept")
            yield Button(_("Decline"), compact=True, classes="file-decline")
            yield Button(_("Open"), variant="primary", compact=True, classes="file-open")
            yield Button("×", compact=True, classes="file-dismiss", tooltip=_("Dismiss"))

    def on_mount(self) -> None:
        self._ready = True
        self._show()

    def _show(self) -> None:
        """Which parts a card shows in each state (events may come before it is mounted)."""
        if not self._ready:
            return
        self.query_one(ProgressBar).update(total=self.total_bytes, progress=self.done_bytes)
        self.query_one(".file-status", Label).update(self.status)
        state = self.state
        self.query_one(".file-bar").display = state in ("accepted", "moving")
        self.query_one(".file-accept").display = state == "offered"
        self.query_one(".file-decline").display = state == "offered"
        self.query_one(".file-open").display = state == "saved" and self.path is not None
        self.query_one(".file-dismiss").display = state in ("saved", "sent", "failed")
        self.set_class(state == "failed", "-failed")

    def _status(self, text: str) -> None:
        self.status = text

    def accepted(self) -> None:
        """The user accepted: the card waits for the first bytes."""
        if self.state == "offered":
            self.state = "accepted"
            self._status(_("waiting for the server…"))
            self._show()

    def progress(self, event: ev.FileProgress) -> None:
        self.state = "moving"
        self.total_bytes = max(event.size, 1)
        self.done_bytes = event.done if event.size else 1
        self._status(file_words.progress_words(event))
        self._show()

    def done(self, event: ev.FileDone) -> None:
        if event.direction == "down":
            self.state = "saved"
            self.path = Path(event.path) if event.path else None
            if self.path is not None and view_problem(self.path) is not None:
                self.path = None  # saved, but nothing the viewer shows: no Open button
            self._status(_("saved to {path} (verified)").format(path=event.path))
        else:
            self.state = "sent"
            self._status(_("stored on the server (verified)"))
        self._show()

    def failed(self, event: ev.FileFailed) -> None:
        self.state = "failed"
        self._status(event.reason)
        self._show()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        for action in ("accept", "decline", "open", "dismiss"):
            if event.button.has_class(f"file-{action}"):
                self.post_message(self.Chosen(self, action))


class FileTray(VerticalScroll):
    """The cards of this session's offers and transfers, newest last; hidden while there are none."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.cards: dict[CardKey, FileCard] = {}
        self.saved: dict[int, Path] = {}  # file id -> where it was saved (for /open)

    def on_mount(self) -> None:
        self.display = False

    def _add(self, card: FileCard) -> FileCard:
        self.cards[card.key] = card
        self.mount(card)
        self.display = True
        self.call_after_refresh(self.scroll_end, animate=False)  # once the card has its height
        return card

    def card(self, direction: str, file_id: int) -> FileCard | None:
        return self.cards.get((direction, file_id))

    def offered(self, event: ev.FileOffered, me: str | None) -> None:
        """An offer to us (ours are shown by their upload's card)."""
        key = ("down", event.file_id)
        if (me is not None and event.sender == me) or key in self.cards:
            return
        self._add(FileCard(key, file_words.offer_title(event, me), offered=True))

    def progress(self, event: ev.FileProgress) -> None:
        card = self.card(event.direction, event.file_id)
        if card is None:
            card = self._add(FileCard((event.direction, event.file_id), self._title(event), offered=False))
        card.progress(event)

    def done(self, event: ev.FileDone) -> None:
        if event.direction == "down" and event.path:
            self.saved[event.file_id] = Path(event.path)
        card = self.card(event.direction, event.file_id)
        if card is None:
            card = self._add(FileCard((event.direction, event.file_id), self._title(event), offered=False))
        card.done(event)

    def failed(self, event: ev.FileFailed) -> None:
        card = self.card(event.direction, event.file_id)
        if card is None:
            card = self._add(FileCard((event.direction, event.file_id), self._title(event), offered=False))
        card.failed(event)

    def accepted(self, file_id: int) -> None:
        card = self.card("down", file_id)
        if card is not None:
            card.accepted()

    def remove_card(self, direction: str, file_id: int) -> None:
        card = self.cards.pop((direction, file_id), None)
        if card is not None:
            card.remove()
        self.display = bool(self.cards)

    @staticmethod
    def _title(event: ev.FileProgress | ev.FileDone | ev.FileFailed) -> str:
        title = _("sending {name}") if event.direction == "up" else _("receiving {name}")
        return title.format(name=event.name)
