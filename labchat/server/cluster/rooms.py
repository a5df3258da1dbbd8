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

import json
import logging
from collections.abc import Callable
from typing import Any

from nats.js.kv import KeyValue

from ...protocol import messages as m
from ..relay import Relay
from ..store import RoomRecord
from .codec import CodecError
from .exchange import RoomNews, RoomShare
from .names import token
from .settings_mirror import SettingsMirror

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


class RoomShares(SettingsMirror[RoomShare]):
    """Writes this relay's rooms to the bucket, and applies the other relays' (module docstring)."""

    prefix = PREFIX
    what = "room"

    def __init__(
        self, kv: KeyValue, relay: Relay, relay_id: str, clock: Callable[[], float], flush: Callable[[], None]
    ) -> None:
        super().__init__(kv, relay, relay_id, clock, flush)
        self._seen: set[str] = set()  # rooms the bucket had at start

    def key_value(self, item: RoomShare) -> tuple[str, bytes]:
        return room_key(item.record.name), encode_room(item)

    def decode(self, key: str, value: bytes) -> RoomShare | None:
        share = decode_room(value)
        return share if key == room_key(share.record.name) else None

    def origin(self, item: RoomShare) -> str:
        return item.relay

    def apply(self, item: RoomShare, live: bool) -> None:
        self.relay.room_requests.apply_remote_room(item, self.clock(), live=live)

    def label(self, item: RoomShare) -> str:
        return item.record.name

    def noticed(self, item: RoomShare) -> None:
        self._seen.add(item.record.name)

    def share_local_rooms(self) -> None:
        """After the start: rooms this relay has that the bucket has not go up (`create` only)."""
        for name, room in self.relay.rooms.items():
            if name not in self._seen:
                self.send_if_absent(RoomShare(self.relay_id, room.record()))
