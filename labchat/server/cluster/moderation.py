"""Roles, mutes, bans, invitations and kicks hold on every relay: the SETTINGS bucket.

An operator's MODERATE is carried out by the relay that received it, as on a single server; the
relay then writes it into the SETTINGS bucket under one key per room, target and kind of state
(`mod.<room>.<user>.role|mute|ban|invite|kick`), the value being the action itself (who, what, how
long, why, when). Every relay watches those keys:

- at start, the latest action per key is the state to hold (an UNBAN is a value too, so a lifted ban
  is lifted everywhere): roles, sanctions with their end, invitations, written into the relay's own
  rooms and SQLite as if done there; no news is sent for the past.
- afterwards, each new action is done again on the other relays (`RoomRequests.apply_remote_moderation`):
  their members hear the same ROOM_EVENT, and a target on that relay is kicked or banned from the
  room there (RoomLeft / CLOSED for a version-1 client) exactly as on a single server.

A mute's or ban's end is the acting relay's time plus its minutes, so it ends at one moment everywhere.
"""

from __future__ import annotations

import json
import logging

from ...protocol import messages as m
from .codec import CodecError
from .exchange import ModerationRecord
from .names import token
from .settings_mirror import SettingsMirror

log = logging.getLogger(__name__)

VERSION = 1
#: The SETTINGS bucket's keys for moderation start with this (the bucket holds other things too).
PREFIX = "mod"

_KIND_OF_ACTION = {
    m.Action.OP: "role", m.Action.DEOP: "role", m.Action.VOICE: "role", m.Action.DEVOICE: "role",
    m.Action.MUTE: "mute", m.Action.UNMUTE: "mute", m.Action.BAN: "ban", m.Action.UNBAN: "ban",
    m.Action.INVITE: "invite", m.Action.KICK: "kick",
}  # fmt: skip


def moderation_key(record: ModerationRecord) -> str:
    kind = _KIND_OF_ACTION[m.Action(record.action)]
    return f"{PREFIX}.{token(record.room)}.{token(record.target)}.{kind}"


def encode_moderation(r: ModerationRecord) -> bytes:
    return json.dumps(
        {"v": VERSION, "relay": r.relay, "room": r.room, "actor": r.actor, "action": r.action,
         "target": r.target, "minutes": r.minutes, "reason": r.reason, "ts": r.ts_ms},
        ensure_ascii=False, separators=(",", ":"),
    ).encode("utf-8")  # fmt: skip


def decode_moderation(data: bytes) -> ModerationRecord:
    """A bucket value, checked as untrusted input: CodecError for anything else."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CodecError(f"not a labchat moderation record: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != VERSION:
        raise CodecError("not a labchat moderation record (unknown format)")
    texts = [obj.get(k) for k in ("relay", "room", "actor", "target", "reason")]
    numbers = [obj.get(k) for k in ("action", "minutes", "ts")]
    if not (all(isinstance(t, str) for t in texts)
            and all(isinstance(x, int) and not isinstance(x, bool) for x in numbers)):
        raise CodecError("not a labchat moderation record (bad fields)")
    relay, room, actor, target, reason = (str(t) for t in texts)
    action, minutes, ts = (x for x in numbers if isinstance(x, int))
    if not (action in _KIND_OF_ACTION and 0 <= minutes < 2**32 and 0 <= ts < 2**63
            and m.is_valid_name(target) and len(reason) <= m.MAX_TEXT_BYTES):
        raise CodecError("not a labchat moderation record (field out of range)")
    return ModerationRecord(relay, room, actor, action, target, minutes, reason, ts)


class ModerationShare(SettingsMirror[ModerationRecord]):
    """Writes this relay's moderation to the bucket, and carries out the other relays'."""

    prefix = PREFIX
    what = "moderation"

    def key_value(self, item: ModerationRecord) -> tuple[str, bytes]:
        return moderation_key(item), encode_moderation(item)

    def decode(self, key: str, value: bytes) -> ModerationRecord | None:
        return decode_moderation(value)

    def origin(self, item: ModerationRecord) -> str:
        return item.relay

    def apply(self, item: ModerationRecord, live: bool) -> None:
        self.relay.room_requests.apply_remote_moderation(item, self.clock(), live=live)

    def label(self, item: ModerationRecord) -> str:
        return item.room

    async def wait_applied(self, count: int, timeout: float) -> None:
        """Until `count` actions of other relays have been carried out here (bounded)."""
        await self.wait_until(lambda: self.applied >= count, timeout)
