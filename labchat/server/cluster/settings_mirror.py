"""What moderation.py and rooms.py share: one kind of record in the SETTINGS bucket, written by the
relay where it happened and carried out by every other relay.

A subclass says how its records are keyed, encoded, decoded and applied; this class owns the rest:
the bucket watch (the values there at start, then every change: `synced` is set between the two),
skipping what this relay wrote itself, the write queue that retries while NATS is away, and the
count of records applied here that tests wait on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from ..relay import Relay
from .codec import CodecError
from .connection import TRANSIENT

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Pause between tries of a write while NATS is away (bounded by the relay's life, not by tries:
#: a record must reach the bucket once NATS is back).
RETRY_PAUSE_S = 0.5


class SettingsMirror(Generic[T]):
    """One kind of SETTINGS record: this relay's go up, the other relays' are carried out here."""

    #: The key prefix of this kind in the bucket ("mod", "room").
    prefix = ""
    #: What the log calls one of these records.
    what = "setting"

    def __init__(
        self, kv: KeyValue, relay: Relay, relay_id: str, clock: Callable[[], float], flush: Callable[[], None]
    ) -> None:
        self.kv = kv
        self.relay = relay
        self.relay_id = relay_id
        self.clock = clock
        self.flush = flush
        #: Set once the watch has delivered every value the bucket held at start.
        self.synced = asyncio.Event()
        self._outgoing: asyncio.Queue[tuple[T, bool]] = asyncio.Queue()
        self._watcher: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        #: Records of other relays carried out here (for the log and tests), and an event set at each.
        self.applied = 0
        self.applied_one = asyncio.Event()

    # ------------------------------------------------------------ what a kind says

    def key_value(self, item: T) -> tuple[str, bytes]:
        raise NotImplementedError

    def decode(self, key: str, value: bytes) -> T | None:
        """The record under `key`, or None to pass it over; CodecError for a malformed one."""
        raise NotImplementedError

    def origin(self, item: T) -> str:
        """The relay that wrote it."""
        raise NotImplementedError

    def apply(self, item: T, live: bool) -> None:
        """Carry out another relay's record here (`live`: a change now, not the start's reading)."""
        raise NotImplementedError

    def label(self, item: T) -> str:
        """A few words for the log: which room."""
        raise NotImplementedError

    def noticed(self, item: T) -> None:
        """Every record read before `synced`, this relay's own included (default: nothing)."""

    # ------------------------------------------------------------ life cycle

    async def start(self) -> None:
        self._watcher = await self.kv.watch(f"{self.prefix}.>")
        self._tasks = [asyncio.create_task(self._watch()), asyncio.create_task(self._write_loop())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._watcher is not None:
            with contextlib.suppress(TimeoutError, nats.errors.Error):
                await self._watcher.stop()

    def send(self, items: list[T]) -> None:
        for item in items:
            self._outgoing.put_nowait((item, False))

    def send_if_absent(self, item: T) -> None:
        """Write `item` only where the bucket has nothing under its key (a record there wins)."""
        self._outgoing.put_nowait((item, True))

    async def wait_until(self, done: Callable[[], bool], timeout: float) -> None:
        """Until `done()` holds, looked at after each record applied here (bounded; for tests)."""

        async def until() -> None:
            while not done():
                self.applied_one.clear()
                await self.applied_one.wait()

        await asyncio.wait_for(until(), timeout)

    # ------------------------------------------------------------ the two loops

    async def _write_loop(self) -> None:
        while True:
            item, only_if_absent = await self._outgoing.get()
            key, value = self.key_value(item)
            while True:
                try:
                    if only_if_absent:
                        with contextlib.suppress(
                            nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError
                        ):
                            await self.kv.create(key, value)
                    else:
                        await self.kv.put(key, value)
                    break
                except TRANSIENT as exc:
                    log.info("%s in %s not shared yet (%s): retrying", self.what, self.label(item),
                             type(exc).__name__)  # fmt: skip
                    await asyncio.sleep(RETRY_PAUSE_S)  # NATS away: bounded pauses until it is back
                except Exception:
                    log.exception("%s in %s", self.what, self.label(item))
                    break

    async def _watch(self) -> None:
        async for entry in self._watcher:
            if entry is None:  # the end of the values held at start
                self.synced.set()
                continue
            if entry.operation is not None or not entry.value:
                continue  # a deletion or a purge: nothing to carry out
            try:
                item = self.decode(entry.key, entry.value)
            except CodecError as exc:
                log.warning("%s entry skipped: %s", self.what, exc)
                continue
            if item is None:
                continue
            if not self.synced.is_set():
                self.noticed(item)
            if self.origin(item) == self.relay_id:
                continue  # done here already
            try:
                self.apply(item, self.synced.is_set())
            except Exception:
                log.exception("%s from another relay in %s", self.what, self.label(item))
                continue
            self.applied += 1
            self.applied_one.set()
            self.flush()
