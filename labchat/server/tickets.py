"""Resumption tickets: a reconnecting client logs in again without a password check.

After each login the server hands the client a ticket, as a TLS 1.3 server hands out session
tickets: a blob that only the server can open, sealed with ChaCha20-Poly1305 under a ticket key that
only the server holds. The server keeps no per-ticket state; everything it needs to accept the ticket
is inside it:

    ticket    = base64url(VERSION || nonce(12) || seal(ticket_key, nonce, plaintext, ad))
    plaintext = expires_at (u64, Unix seconds) || account_tag (8 bytes) || account name (UTF-8)
    ad        = b"labchat-ticket/1" || the server's static public key

`account_tag` is the start of SHA-256 of the account's password salt. The salt changes with the
password, so `labchat-admin passwd` (or removing the account) makes every ticket for it worthless,
and the server's public key in `ad` ties a ticket to this server's identity. The ticket key lives in
a file beside the server key, so a restarted server (`kill -9` included) still accepts its tickets;
deleting that file revokes them all.

Why it matters: scrypt makes every password login cost tens of milliseconds of CPU and makes it
subject to the throttle. A client knocked off by a restart, a roam or a forged RESET comes back with
its ticket at the cost of one AEAD open, and guessing at its name cannot keep it out.

A ticket is a bearer token: whoever holds one can log in as its account until it expires. It only
ever travels inside the encrypted channel (docs/security.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ..protocol.messages import MAX_TICKET_CHARS, name_key
from .keys import load_or_create_server_key

#: Tickets are accepted for this long after they are issued.
TICKET_LIFETIME_S = 12 * 3600
TICKET_KEY_BYTES = 32
_VERSION = 1
_NONCE_BYTES = 12
_AD_LABEL = b"labchat-ticket/1"
_HEAD = struct.Struct(">Q8s")


def account_tag(salt: bytes) -> bytes:
    """What binds a ticket to the account's current password (the salt changes with it)."""
    return hashlib.sha256(salt).digest()[:8]


def load_or_create_ticket_key(path: Path) -> bytes:
    """The ticket key file (owner-only, like the server key; same checks, same errors)."""
    return load_or_create_server_key(path)


def derive_ticket_key(server_key: bytes) -> bytes:
    """The ticket key of a cluster's relays, derived from the server key they share (`--key`): every
    relay then opens every other relay's tickets, with no second secret file to copy and keep in
    step. A one-way derivation under its own label, so the ticket key reveals nothing of the server
    key, and rotating the server key rotates the tickets with it."""
    return hmac.new(server_key, b"labchat cluster ticket key/1", hashlib.sha256).digest()


class TicketBook:
    """Issues and opens tickets for one server. Pure apart from `rng`: `now` is a parameter."""

    def __init__(
        self,
        ticket_key: bytes,
        server_public_key: bytes,
        *,
        lifetime_s: int = TICKET_LIFETIME_S,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if len(ticket_key) != TICKET_KEY_BYTES:
            raise ValueError(f"a ticket key is {TICKET_KEY_BYTES} bytes")
        self._aead = ChaCha20Poly1305(ticket_key)
        self._ad = _AD_LABEL + server_public_key
        self._rng = rng
        self.lifetime_s = lifetime_s

    def issue(self, user: str, salt: bytes, now: float) -> str:
        """A ticket for account `user` (its own spelling) whose password salt is `salt`."""
        nonce = self._rng(_NONCE_BYTES)
        plaintext = _HEAD.pack(int(now) + self.lifetime_s, account_tag(salt)) + user.encode("ascii")
        return _encode(bytes((_VERSION,)) + nonce + self._aead.encrypt(nonce, plaintext, self._ad))

    def open(self, ticket: str, user: str, salt: bytes, now: float) -> bool:
        """Is `ticket` this server's, unexpired, for `user` and for the password with this `salt`?

        Never raises: a ticket is client input, and anything wrong with it means "no".
        """
        if not ticket or len(ticket) > MAX_TICKET_CHARS:
            return False
        try:
            blob = base64.urlsafe_b64decode(ticket + "=" * (-len(ticket) % 4))
        except (binascii.Error, ValueError):
            return False
        if len(blob) < 1 + _NONCE_BYTES + _HEAD.size + 16 or blob[0] != _VERSION:
            return False
        if _encode(blob) != ticket:
            return False  # one spelling per ticket: base64 leaves spare bits in its last character
        nonce, sealed = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            plaintext = self._aead.decrypt(nonce, sealed, self._ad)
        except InvalidTag:
            return False
        expires_at, tag = _HEAD.unpack_from(plaintext)
        try:
            name = plaintext[_HEAD.size :].decode("ascii")
        except UnicodeDecodeError:
            return False
        return (
            now < expires_at
            and name_key(name) == name_key(user)
            and tag == account_tag(salt)
        )  # fmt: skip


def _encode(blob: bytes) -> str:
    return base64.urlsafe_b64encode(blob).rstrip(b"=").decode("ascii")
