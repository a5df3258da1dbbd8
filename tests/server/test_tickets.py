"""Resumption tickets: what opens, what does not, and that no input makes `open` raise."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from labchat.protocol.messages import MAX_TICKET_CHARS
from labchat.server.tickets import TicketBook, load_or_create_ticket_key

KEY = bytes(range(32))
SERVER = b"\x07" * 32
SALT = b"salt" * 4
T0 = 1_700_000_000.0


def test_a_ticket_opens_for_its_account_until_it_expires() -> None:
    book = TicketBook(KEY, SERVER, lifetime_s=3600)
    ticket = book.issue("Alice", SALT, T0)
    assert len(ticket) <= MAX_TICKET_CHARS
    assert book.open(ticket, "alice", SALT, T0 + 10)  # names are case-insensitive
    assert not book.open(ticket, "alice", SALT, T0 + 3600)  # expired
    assert not book.open(ticket, "bob", SALT, T0)  # someone else's
    assert not book.open(ticket, "alice", b"new salt" * 2, T0)  # the password changed since
    assert not TicketBook(os.urandom(32), SERVER).open(ticket, "alice", SALT, T0)  # another key
    assert not TicketBook(KEY, b"\x08" * 32).open(ticket, "alice", SALT, T0)  # another server


def test_every_ticket_is_different() -> None:
    book = TicketBook(KEY, SERVER)
    assert book.issue("alice", SALT, T0) != book.issue("alice", SALT, T0)


def test_a_tampered_ticket_is_refused() -> None:
    book = TicketBook(KEY, SERVER)
    ticket = book.issue("alice", SALT, T0)
    for i in range(len(ticket)):
        swapped = "A" if ticket[i] != "A" else "B"
        assert not book.open(ticket[:i] + swapped + ticket[i + 1 :], "alice", SALT, T0)


@given(st.text(max_size=300), st.text(max_size=30))
def test_any_text_is_refused_without_raising(ticket: str, user: str) -> None:
    assert TicketBook(KEY, SERVER).open(ticket, user or "a", SALT, T0) is False


@given(st.binary(max_size=150))
def test_any_bytes_as_base64_are_refused_without_raising(blob: bytes) -> None:
    ticket = base64.urlsafe_b64encode(blob).rstrip(b"=").decode()
    assert TicketBook(KEY, SERVER).open(ticket, "alice", SALT, T0) is False


def test_the_ticket_key_survives_a_restart_and_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "server.ticket-key"
    key = load_or_create_ticket_key(path)
    assert load_or_create_ticket_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
