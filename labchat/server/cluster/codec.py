"""How a room message is stored in its JetStream stream, and read back.

A stream message's payload is a small JSON object; the stream sequence is not in it (JetStream
numbers the message: that number is the room `seq`). Everything read back from NATS is checked as
untrusted input: a malformed payload (another program wrote to our subject, a bug in an older
relay) is refused with `CodecError`, which the relay logs and skips; it never stops a relay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: The payload format; a relay that meets a higher one skips it rather than misread it.
VERSION = 1


class CodecError(ValueError):
    """A stream message that is not a labchat room message."""


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """One room message as the stream holds it (the room and seq come from the stream)."""

    ts_ms: int
    user: str
    text: str
    flags: int
    msg_id: int


def encode_room_message(record: RoomRecord) -> bytes:
    return json.dumps(
        {"v": VERSION, "ts": record.ts_ms, "user": record.user, "text": record.text,
         "flags": record.flags, "id": record.msg_id},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


def decode_room_message(data: bytes) -> RoomRecord:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CodecError(f"not a labchat room message: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != VERSION:
        raise CodecError("not a labchat room message (unknown format)")
    ts, user, text, flags, msg_id = (obj.get(k) for k in ("ts", "user", "text", "flags", "id"))
    if not (isinstance(ts, int) and isinstance(user, str) and isinstance(text, str)
            and isinstance(flags, int) and isinstance(msg_id, int)):
        raise CodecError("not a labchat room message (bad fields)")
    if isinstance(ts, bool) or isinstance(flags, bool) or isinstance(msg_id, bool):
        raise CodecError("not a labchat room message (bad fields)")
    if not (0 <= ts < 2**63 and 0 <= flags < 2**32 and 0 <= msg_id < 2**64):
        raise CodecError("not a labchat room message (field out of range)")
    return RoomRecord(ts, user, text, flags, msg_id)



# ------------------------------------------------------------ accounts (the ACCOUNTS bucket)

#: The account value format in the ACCOUNTS bucket (key: names.token(name)): the same JSON as
#: cluster/accounts.py's encode_account writes (cluster-presence), which the relays mirror.
ACCOUNT_VERSION = 1


@dataclass(frozen=True, slots=True)
class AccountValue:
    """One account as the ACCOUNTS bucket holds it: what login needs, never the password."""

    name: str  # as first registered
    salt: bytes
    digest: bytes  # scrypt(password, salt, n, r, p), 32 bytes
    n: int
    r: int
    p: int
    admin: bool
    created_ms: int


def encode_account(account: AccountValue) -> bytes:
    return json.dumps(
        {"v": ACCOUNT_VERSION, "name": account.name, "salt": account.salt.hex(),
         "digest": account.digest.hex(), "n": account.n, "r": account.r, "p": account.p,
         "admin": account.admin, "created": account.created_ms},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")  # fmt: skip


def decode_account(data: bytes) -> AccountValue:
    """An ACCOUNTS value, checked (CodecError for anything else)."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CodecError(f"not a labchat account: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != ACCOUNT_VERSION:
        raise CodecError("not a labchat account (unknown format)")
    name, salt, digest, admin = obj.get("name"), obj.get("salt"), obj.get("digest"), obj.get("admin")
    numbers = [x for x in (obj.get(k) for k in ("n", "r", "p", "created"))
               if isinstance(x, int) and not isinstance(x, bool)]
    if not (isinstance(name, str) and isinstance(salt, str) and isinstance(digest, str)
            and isinstance(admin, bool) and len(numbers) == 4):
        raise CodecError("not a labchat account (bad fields)")
    try:
        salt_bytes, digest_bytes = bytes.fromhex(salt), bytes.fromhex(digest)
    except ValueError:
        raise CodecError("not a labchat account (bad hex)") from None
    n, r, p, created = numbers
    if not (1 < n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and 0 <= created < 2**63):
        raise CodecError("not a labchat account (field out of range)")
    return AccountValue(name, salt_bytes, digest_bytes, n, r, p, admin, created)
