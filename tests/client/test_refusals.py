"""The server's refusals in the user's language (client/refusals.py): English keeps the server's own
words, another language gets its catalogue's sentence for the code, and every code a user may meet
has one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from labchat import i18n
from labchat.client.refusals import REFUSALS, in_users_language
from labchat.protocol import events as ev
from labchat.protocol.errors import ErrorCode

from ..helpers import connect, start_server


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    yield
    i18n.set_language("en")


def test_english_keeps_the_servers_words() -> None:
    i18n.set_language("en")
    failed = ev.MessageFailed(1, "muted for 4 more minutes", "hi", None, "lab", ErrorCode.MUTED)
    assert in_users_language(failed) is failed


def test_indonesian_gets_the_sentence_for_the_code_and_keeps_the_rest() -> None:
    i18n.set_language("id")
    muted = ev.MessageFailed(1, "muted for 4 more minutes", "hi", None, "lab", ErrorCode.MUTED)
    failed = in_users_language(muted)
    assert isinstance(failed, ev.MessageFailed)
    assert failed.reason == "Anda dibisukan di ruang ini" and failed.text == "hi" and failed.room == "lab"
    refused = in_users_language(ev.RequestFailed("join", "lab", ErrorCode.BAD_KEY, "wrong key for lab"))
    assert isinstance(refused, ev.RequestFailed) and refused.text == "kunci ruang salah"
    login = in_users_language(ev.LoginRefused(ErrorCode.INVALID_PASSWORD, "wrong password"))
    assert isinstance(login, ev.LoginRefused) and login.reason == "kata sandi salah"
    # A code without a sentence, and a notice (it names people), keep the server's words.
    odd = ev.RequestFailed("join", "lab", 250, "something new")
    assert in_users_language(odd) == odd
    notice = ev.ServerNotice("budi is offline", ErrorCode.RECIPIENT_OFFLINE)
    assert in_users_language(notice) is notice


def test_every_sentence_is_translated() -> None:
    i18n.set_language("id")
    untranslated = [s for s in REFUSALS.values() if i18n._(s) == s]
    assert not untranslated


async def test_a_real_refusal_reaches_an_indonesian_client_in_indonesian(tmp_path: Path) -> None:
    """bob, muted in a room by its operator, says something there: the server's MUTED refusal reaches
    his client core in Bahasa Indonesia."""
    i18n.set_language("id")
    server = await start_server(tmp_path)
    try:
        alice = await connect(server, "alice", tmp_path=tmp_path)
        bob = await connect(server, "bob", tmp_path=tmp_path)
        alice.client.submit("/join kelas")
        await alice.wait_for(ev.RoomState, lambda e: e.room == "kelas")
        bob.client.submit("/join kelas")
        await bob.wait_for(ev.RoomState, lambda e: e.room == "kelas")
        alice.client.submit("/mute bob 5")
        await bob.wait_for(ev.RoomEvent, lambda e: e.room == "kelas")
        bob.client.submit("halo")
        failed = await bob.wait_for(ev.MessageFailed, lambda e: e.code == ErrorCode.MUTED)
        assert failed.reason == "Anda dibisukan di ruang ini" and failed.text == "halo"
        await alice.close()
        await bob.close()
    finally:
        await server.stop()
