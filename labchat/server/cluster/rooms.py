"""Rooms made on one relay exist on every relay, with the same settings: the SETTINGS bucket.

A room's record (creator, topic, modes, key, its announcement) is written under `room.<room token>`
whenever a relay makes the room (a JOIN of a new name, 18.4) or an operator sets it (ROOM_SET, 18.5),
together with the change itself (`news`). Every relay watches those keys:

- at start, every room in the bucket is made or brought up to date in the relay's rooms and SQLite,
  and each room the relay has that the bucket has not is written there (`create`: a record already
  there wins), so rooms set up on one relay before it joined reach the others;
- afterwards, each change is applied as it comes, and the relay's members hear the same ROOM_EVENT,
  ROOM_STATE and ANNOUNCEMENT as the members of the relay where it was set.

Two relays setting one room at the same moment: the bucket keeps the last write, which every relay
applies last, so all end alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from ...protocol import messages as m
from ..relay import Relay
from ..store import RoomRecord
from .codec import CodecError
from .connection import TRANSIENT
from .exchange import RoomNews, RoomShare
from .names import token

log = logging.getLogger(__name__)

VERSION = 1
PREFIX = "room"


def room_key(room: str) -> str:
    return f"{PREFIX}.{token(room)}"


def encode_room(share: RoomShare) -> bytes:
    r, news = share.record, share.news
    obj: dict[str, Any] = {
        "v": VERSION, "relay": share.relay, "name": r.name, "creator": r.creator, "topic": r.topic,
        "modes": r.modes, "key": r.key, "created": r.created_ms, "ann_id": r.announcement_id,
        "ann_text": r.announcement_text, "ann_by": r.announcement_by, "ann_ms": r.announcement_ms,
        "creator_op": share.creator_op,
    }  # fmt: skip
    if news is not None:
        obj["news"] = {"action": news.action, "actor": news.actor, "value": news.value, "ts": news.ts_ms}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _int(obj: dict[str, Any], key: str, high: int = 2**63) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < high:
        raise CodecError(f"not a labchat room record (bad {key})")
    return value


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or len(value) > m.MAX_LONG_TEXT_BYTES:
        raise CodecError(f"not a labchat room record (bad {key})")
    return value


def decode_room(data: bytes) -> RoomShare:
    """A bucket value, checked as untrusted input: CodecError for anything else."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CodecError(f"not a labchat room record: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != VERSION:
        raise CodecError("not a labchat room record (unknown format)")
    name = _str(obj, "name")
    if not m.is_valid_room(name):
        raise CodecError("not a labchat room record (bad name)")
    record = RoomRecord(
        name, _str(obj, "creator"), _str(obj, "topic"), _int(obj, "modes", 2**32), _str(obj, "key"),
        _int(obj, "created"), _int(obj, "ann_id"), _str(obj, "ann_text"), _str(obj, "ann_by"),
        _int(obj, "ann_ms"),
    )  # fmt: skip
    creator_op = obj.get("creator_op")
    if not isinstance(creator_op, bool):
        raise CodecError("not a labchat room record (bad creator_op)")
    news = None
    raw = obj.get("news")
    if raw is not None:
        if not isinstance(raw, dict):
            raise CodecError("not a labchat room record (bad news)")
        news = RoomNews(_int(raw, "action", 256), _str(raw, "actor"), _str(raw, "value"), _int(raw, "ts"))
    return RoomShare(_str(obj, "relay"), record, creator_op, news)


class RoomShares:
    """Writes this relay's rooms to the bucket, and applies the other relays' (module docstring)."""

    def __init__(
        self, kv: KeyValue, relay: Relay, relay_id: str, clock: Callable[[], float], flush: Callable[[], None]
    ) -> None:
        self.kv = kv
        self.relay = relay
        self.relay_id = relay_id
        self.clock = clock
        self.flush = flush
        self.synced = asyncio.Event()
        self._seen: set[str] = set()  # rooms the bucket had at start
        self._outgoing: asyncio.Queue[tuple[RoomShare, bool]] = asyncio.Queue()
        self._watcher: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        #: Changes of other relays applied here (for the log and tests), and an event set at each.
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

    def send(self, shares: list[RoomShare]) -> None:
        for share in shares:
            self._outgoing.put_nowait((share, False))

    def share_local_rooms(self) -> None:
        """After the start: rooms this relay has that the bucket has not go up (`create` only)."""
        for name, room in self.relay.rooms.items():
            if name not in self._seen:
                self._outgoing.put_nowait((RoomShare(self.relay_id, room.record()), True))

    async def _write_loop(self) -> None:
        while True:
            share, only_if_absent = await self._outgoing.get()
            key, value = room_key(share.record.name), encode_room(share)
            while True:
                try:
                    if only_if_absent:
                        with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError,
                                                 nats.js.errors.KeyNotFoundError):
                            await self.kv.create(key, value)
                    else:
                        await self.kv.put(key, value)
                    break
                except TRANSIENT as exc:
                    log.info("room %s not shared yet (%s): retrying", share.record.name, type(exc).__name__)
                    await asyncio.sleep(0.5)  # NATS away: bounded pauses until it is back
                except Exception:
                    log.exception("room %s", share.record.name)
                    break

    async def _watch(self) -> None:
        async for entry in self._watcher:
            if entry is None:
                self.synced.set()
                continue
            if entry.operation is not None or not entry.value:
                continue
            try:
                share = decode_room(entry.value)
            except CodecError as exc:
                log.warning("room entry skipped: %s", exc)
                continue
            if entry.key != room_key(share.record.name):
                continue
            if not self.synced.is_set():
                self._seen.add(share.record.name)
            if share.relay == self.relay_id:
                continue  # set here already
            try:
                live = self.synced.is_set()
                self.relay.room_requests.apply_remote_room(share, self.clock(), live=live)
            except Exception:
                log.exception("room %s from another relay", share.record.name)
                continue
            self.applied += 1
            self.applied_one.set()
            self.flush()

    async def wait_until(self, done: Callable[[], bool], timeout: float) -> None:
        """Until `done()` holds, looked at after each change applied here (bounded; for tests)."""
        async def until() -> None:
            while not done():
                self.applied_one.clear()
                await self.applied_one.wait()

        await asyncio.wait_for(until(), timeout)
