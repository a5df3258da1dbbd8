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

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import nats.errors
from nats.js.kv import KeyValue

from ...protocol import messages as m
from ..relay import Relay
from .codec import CodecError
from .connection import TRANSIENT
from .exchange import ModerationRecord
from .names import token

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


class ModerationShare:
    """Writes this relay's moderation to the bucket, and carries out the other relays'."""

    def __init__(
        self, kv: KeyValue, relay: Relay, relay_id: str, clock: Callable[[], float], flush: Callable[[], None]
    ) -> None:
        self.kv = kv
        self.relay = relay
        self.relay_id = relay_id
        self.clock = clock
        self.flush = flush
        self.synced = asyncio.Event()
        self._outgoing: asyncio.Queue[ModerationRecord] = asyncio.Queue()
        self._watcher: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        #: Actions of other relays carried out here (for the log and tests), and an event set at each.
        self.applied = 0
        self.applied_one = asyncio.Event()

    async def start(self) -> None:
        self._watcher = await self.kv.watch(f"{PREFIX}.>")
        self._tasks = [asyncio.create_task(self._watch()), asyncio.create_task(self._write_loop())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._watcher is not None:
            with contextlib.suppress(TimeoutError, nats.errors.Error):
                await self._watcher.stop()

    def send(self, records: list[ModerationRecord]) -> None:
        for record in records:
            self._outgoing.put_nowait(record)

    async def _write_loop(self) -> None:
        while True:
            record = await self._outgoing.get()
            while True:
                try:
                    await self.kv.put(moderation_key(record), encode_moderation(record))
                    break
                except TRANSIENT as exc:
                    log.info("moderation not shared yet (%s): retrying", type(exc).__name__)
                    await asyncio.sleep(0.5)  # NATS away: bounded pauses until it is back
                except Exception:
                    log.exception("moderation in %s", record.room)
                    break

    async def _watch(self) -> None:
        async for entry in self._watcher:
            if entry is None:
                self.synced.set()
                continue
            if entry.operation is not None or not entry.value:
                continue
            try:
                record = decode_moderation(entry.value)
            except CodecError as exc:
                log.warning("moderation entry skipped: %s", exc)
                continue
            if record.relay == self.relay_id:
                continue  # done here already
            try:
                live = self.synced.is_set()
                self.relay.room_requests.apply_remote_moderation(record, self.clock(), live=live)
            except Exception:
                log.exception("moderation from another relay in %s", record.room)
                continue
            self.applied += 1
            self.applied_one.set()
            self.flush()

    async def wait_applied(self, count: int, timeout: float) -> None:
        """Until `count` actions of other relays have been carried out here (bounded)."""
        async def enough() -> None:
            while self.applied < count:
                self.applied_one.clear()
                await self.applied_one.wait()

        await asyncio.wait_for(enough(), timeout)
