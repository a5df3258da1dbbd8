"""The app in Bahasa Indonesia: the widgets' words and the keys' words (the footer, the keys panel
and the command palette, which Textual reads from class attributes fixed at import time)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.app import App
from textual.command import CommandPalette
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.widgets import Button, Input, Label, OptionList, TextArea

from labchat import i18n
from labchat.server.transport import RelayServer
from labchat.tui.binding_words import TEXTUAL_KEY_WORDS, translate

from .util import app_for, log_in, wait_until


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    """The language is process-wide: leave it as the rest of the suite expects."""
    yield
    i18n.set_language("en")


async def test_the_room_and_its_keys_in_indonesian(server: RelayServer, tmp_path: Path) -> None:
    i18n.set_language("id")
    app = app_for(server, tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await log_in(pilot, app, "budi")
        room = app.room
        users = room.query_one("#sidebar")
        await wait_until(pilot, lambda: str(users.query_one("#user-count", Label).render()) == "Daring · 1")
        assert str(users.query_one("#users", OptionList).get_option_at_index(0).prompt).endswith(" (Anda)")
        assert str(room.query_one("#room-count", Label).render()) == "Ruang · 1"
        assert room.composer.input.placeholder.startswith("Pesan · Enter kirim")

        # The footer: labchat's keys and Textual's own ("palette"), translated where Textual reads them.
        footer = [str(key.render()) for key in room.query("FooterKey")]
        assert any("Keluar" in key for key in footer), footer
        assert any("palet" in key for key in footer), footer
        assert not any("Quit" in key or "palette" in key for key in footer), footer
        # Keys with a number in their words, as the keys panel lists them.
        assert room.active_bindings["alt+3"].binding.description == "Ruang 3"
        # The command palette: Textual's entries too.
        titles = [command.title for command in app.get_system_commands(room)]
        assert "Tema" in titles and "Theme" not in titles
        app.action_command_palette()
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette))
        assert app.screen.query_one(Input).placeholder == "Cari perintah…"

    # The same classes speak English again for the next app: nothing was changed in place.
    i18n.set_language("en")
    english = app_for(server, tmp_path)
    async with english.run_test(size=(120, 30)) as pilot:
        await wait_until(pilot, lambda: english.login_screen is not None)
        assert english.room.active_bindings["alt+3"].binding.description == "Room 3"
        assert english.room.composer.input.placeholder.startswith("Message · Enter sends")


def test_textuals_own_key_words_are_in_the_catalogue() -> None:
    """The keys panel lists the keys of the focused widget, Textual's words: a Textual that adds one
    shows it in English until it is listed in `TEXTUAL_KEY_WORDS` (and so in the catalogue)."""
    shown = {
        binding.description
        for widget in (App, Screen, TextArea, Input, OptionList, Button, ScrollView)
        for _key, binding in widget._merged_bindings or ()
        if binding.description and not binding.system
    }
    assert shown - set(TEXTUAL_KEY_WORDS) == set()
    i18n.set_language("id")
    assert translate("Select all") == "Pilih semua"
