"""Who is online on the other relays: the presence bucket, read by every relay.

The PRESENCE bucket has one key per online user (`names.token` of the name) whose value says which
relay holds the session and what the rooms should list: display name, rooms, MEMBER_GUEST/ADMIN
flags, away and seat. Its writer is the relay holding the user (sessions.py, with compare-and-set);
every relay watches the whole bucket and hands each change to `Relay.apply_remote_presence`, which
lists the user in its rooms (`Room.remote`) and tells local members JOINED, LEFT and AWAY.

Why a watch of the bucket rather than JOINED/LEFT on `presence_subject(room)` alone: the watch is a
JetStream ordered consumer, so a relay that reconnects or starts later gets the current state of
every user first and then each change, in order per user; plain subject messages sent while a relay
was away would be lost, and it would list people who left. One source, the bucket, is the truth.

Entries expire (the bucket's TTL, about the client timeout) unless their relay refreshes them: a
relay killed with -9 stops refreshing, and `reconcile` (every refresh period) turns its users'
expired entries into LEFT "timed out", as a single server does for a silent client.
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
from ..relay import Relay, Session
from .codec import CodecError
from .exchange import RemotePresence
from .names import token

log = logging.getLogger(__name__)

VERSION = 1


def state_of(sess: Session, relay_id: str) -> RemotePresence:
    """What the bucket says of a local session."""
    assert sess.user is not None
    flags = (m.MEMBER_GUEST if sess.guest else 0) | (m.MEMBER_ADMIN if sess.admin else 0)
    away = sess.away
    return RemotePresence(
        relay_id, sess.sid.hex(), sess.user, tuple(sess.rooms), flags,
        away.reason if away is not None else None, away.since_ms if away is not None else 0, sess.seat,
    )  # fmt: skip


def encode_presence(state: RemotePresence) -> bytes:
    return json.dumps(
        {"v": VERSION, "relay": state.relay, "session": state.session, "name": state.name,
         "rooms": list(state.rooms), "flags": state.flags, "away": state.away,
         "since": state.away_since_ms, "seat": state.seat},
        ensure_ascii=False, separators=(",", ":"),
    ).encode("utf-8")  # fmt: skip


def decode_presence(data: bytes) -> RemotePresence:
    """A bucket value, checked as untrusted input: CodecError for anything else."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CodecError(f"not a labchat presence entry: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != VERSION:
        raise CodecError("not a labchat presence entry (unknown format)")
    relay, session, name, rooms = obj.get("relay"), obj.get("session"), obj.get("name"), obj.get("rooms")
    flags, away, since, seat = obj.get("flags"), obj.get("away"), obj.get("since"), obj.get("seat")
    if not (isinstance(relay, str) and isinstance(session, str) and isinstance(name, str)
            and isinstance(rooms, list) and all(isinstance(r, str) for r in rooms)
            and isinstance(flags, int) and not isinstance(flags, bool)
            and (away is None or isinstance(away, str))
            and isinstance(since, int) and not isinstance(since, bool) and isinstance(seat, str)):
        raise CodecError("not a labchat presence entry (bad fields)")
    if not (m.is_valid_name(name) and 0 <= flags < 2**32 and 0 <= since < 2**63 and len(rooms) <= 64):
        raise CodecError("not a labchat presence entry (field out of range)")
    return RemotePresence(relay, session, name, tuple(rooms), flags, away, since, seat)


class PresenceWatch:
    """Feeds the presence bucket's changes by other relays into the relay (see the module docstring)."""

    def __init__(
        self, kv: KeyValue, relay: Relay, relay_id: str, clock: Callable[[], float], flush: Callable[[], None]
    ) -> None:
        self.kv = kv
        self.relay = relay
        self.relay_id = relay_id
        self.clock = clock
        self.flush = flush
        #: Set once the bucket's state at start has been read (tests and the log wait for it).
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watcher: Any = None

    async def start(self) -> None:
        self._watcher = await self.kv.watchall()
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._watcher is not None:
            with contextlib.suppress(TimeoutError, nats.errors.Error):
                await self._watcher.stop()

    async def _run(self) -> None:
        async for entry in self._watcher:
            if entry is None:  # the state at start is all read
                self.synced.set()
                continue
            try:
                self._apply(entry)
            except Exception:  # a bug, not bad input: log it, keep watching
                log.exception("presence entry %s", entry.key)

    def _apply(self, entry: KeyValue.Entry) -> None:
        key = _key_of(entry.key)
        if key is None:
            return
        state: RemotePresence | None = None
        if entry.operation is None and entry.value:
            try:
                state = decode_presence(entry.value)
            except CodecError as exc:
                log.warning("presence entry for %s skipped: %s", key, exc)
                return
            if m.name_key(state.name) != key:
                log.warning("presence entry for %s names %s: skipped", key, state.name)
                return
            if state.relay == self.relay_id:
                state = None  # our own: the relay knows its sessions itself
        if state is None and key not in self._remote():
            return
        self.relay.apply_remote_presence(key, state, self.clock())
        self.flush()

    def _remote(self) -> dict[str, RemotePresence]:
        assert self.relay.cluster is not None
        return self.relay.cluster.remote

    async def reconcile(self) -> None:
        """Users whose entries expired (their relay stopped refreshing them) have left: LEFT
        "timed out" in every room that listed them."""
        try:
            keys = set(await self.kv.keys())
        except nats.js.errors.NoKeysError:
            keys = set()
        gone = [k for k in self._remote() if token(k) not in keys]
        for key in gone:
            self.relay.apply_remote_presence(key, None, self.clock(), reason="timed out")
        if gone:
            log.info("%d user(s) on other relays timed out", len(gone))
            self.flush()


def _key_of(tok: str) -> str | None:
    """The name key a bucket key stands for, or None for a key that is not one of ours."""
    try:
        key = bytes.fromhex(tok).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return key if token(key) == tok else None
