"""The first-contact prompt: show a new server's key fingerprint and ask whether to trust it.

Trust on first use, as ssh does: the fingerprint is pinned only if the user says so. Enter trusts (the
focused, default button); Escape cancels. Dismisses with True (trust) or False (cancel).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ...i18n import N_, _, styled_parts
from ..binding_words import KeysInLanguage


class TrustScreen(KeysInLanguage, ModalScreen[bool]):
    """Asks to trust a server seen for the first time."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", N_("Cancel"))]

    def __init__(self, server_label: str, fingerprint: str) -> None:
        super().__init__()
        self.server_label = server_label
        self.fingerprint = fingerprint

    def compose(self) -> ComposeResult:
        with Vertical(id="trust-box") as box:
            box.border_title = _("New server")
            yield Static(
                Text.assemble(
                    *styled_parts(
                        _("This is the first time you connect to {server}. Its key fingerprint is:"),
                        server=self.server_label,
                    )
                ),
            )
            yield Static(Text(self.fingerprint), id="trust-fingerprint")
            yield Static(
                _(
                    "Compare it with the one the server's admin gives you (labchat-server prints it when "
                    "it starts). Trusting pins this key: you will be warned if it ever changes."
                ),
                id="trust-explain",
            )
            with Horizontal(id="trust-actions"):
                yield Button(_("Trust and log in (Enter)"), id="trust", variant="primary")
                yield Button(_("Cancel (Esc)"), id="cancel")

    def on_mount(self) -> None:
        self.query_one("#trust", Button).focus()

    @on(Button.Pressed, "#trust")
    def _trust(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)
