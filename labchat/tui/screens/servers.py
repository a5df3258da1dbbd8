""""Find servers": the labchat servers that answered a LAN probe, to pick one (docs/protocol.md 19).

Picking only fills in where to connect; the first login still pins the server's key as it would
for an address typed by hand, which is why each line shows the fingerprint to compare.
Dismisses with the chosen `ServerFound`, or None.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, OptionList, Static
from textual.widgets.option_list import Option

from ...i18n import N_, _
from ...protocol.discovery import ServerFound
from ..binding_words import KeysInLanguage


def _where(found: ServerFound) -> str:
    return f"[{found.host}]:{found.port}" if ":" in found.host else f"{found.host}:{found.port}"


class ServersScreen(KeysInLanguage, ModalScreen[ServerFound | None]):
    """The servers found, one per line: Enter picks, Escape closes."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", N_("Close"))]

    def __init__(self, found: list[ServerFound], port: int) -> None:
        super().__init__()
        self.found = found
        self.port = port

    def compose(self) -> ComposeResult:
        with Vertical(id="servers-box") as box:
            box.border_title = _("Servers on this network")
            if self.found:
                yield Static(_("Pick one with Enter (Escape: keep the address you gave)."), id="servers-hint")
                yield OptionList(
                    *(
                        Option(
                            Text.assemble((f.name, "bold"), "  ", _where(f), "\n", (f.fingerprint, "dim")),
                            id=str(i),
                        )
                        for i, f in enumerate(self.found)
                    ),
                    id="servers-list",
                )
            else:
                yield Static(
                    _(
                        "No labchat server answered on UDP port {port}. Ask for the address, or check "
                        "that this computer is on the lab's network."
                    ).format(port=self.port),
                    id="servers-none",
                )
            yield Button(_("Close (Esc)"), id="servers-close", compact=True)

    def on_mount(self) -> None:
        target = "#servers-list" if self.found else "#servers-close"
        self.query_one(target).focus()

    @on(OptionList.OptionSelected, "#servers-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.found[int(event.option_id or 0)])

    @on(Button.Pressed, "#servers-close")
    def action_close(self) -> None:
        self.dismiss(None)
