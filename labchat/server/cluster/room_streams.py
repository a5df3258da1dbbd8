"""Every followed room's stream, read in order from where the local replica stops.

One ordered consumer per room (JetStream's ordered push consumer: one message at a time, in stream
order, recreated by the client at the next sequence when it misses one or its heartbeats stop). It
starts at the local replica's last seq + 1, so a relay that restarts reads only what it has not
stored, and a relay that opens a room for the first time reads its whole history into the replica.

What it reads goes to `deliver(room, seq, record)`, which the bridge turns into the relay's
`room_message_stored`. A payload that does not decode is logged and skipped (codec.py): another
program writing to our subject never stops a relay. Should the subscription itself fail (the whole
cluster restarting), the reader subscribes again from the next seq it needs, for ever, until closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from nats.js.api import ConsumerConfig, DeliverPolicy

from ...i18n import _
from . import names
from .codec import CodecError, RoomRecord, decode_room_message
from .connection import ClusterConnection

log = logging.getLogger(__name__)

#: The ordered consumer's idle heartbeat: two missed ones and the client recreates it, so a
#: consumer lost with a NATS node is back within about twice this.
HEARTBEAT_S = 1.0
#: Wait before subscribing again after the subscription itself failed.
RESUBSCRIBE_S = 0.5


class RoomStreams:
    """The readers of the rooms a relay follows. `follow(room)` is idempotent; `close()` stops all."""

    def __init__(
        self,
        conn: ClusterConnection,
        deliver: Callable[[str, int, RoomRecord], None],
        last_seq: Callable[[str], int],
        *,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self._conn = conn
        self._deliver = deliver
        self._last_seq = last_seq
        self._heartbeat_s = heartbeat_s
        self._readers: dict[str, asyncio.Task[None]] = {}
        #: Per room, the next seq the replica needs (what a resubscription starts from).
        self.next_seq: dict[str, int] = {}
        #: Set whenever a reader moves on (a message delivered or skipped): lets a caller wait.
        self.moved = asyncio.Event()

    @property
    def rooms(self) -> list[str]:
        return list(self._readers)

    def follow(self, room: str) -> None:
        if room not in self._readers:
            self.next_seq[room] = self._last_seq(room) + 1
            self._readers[room] = asyncio.get_running_loop().create_task(self._read(room))

    async def reached(self, room: str, seq: int) -> None:
        """Until the room's reader has gone past `seq` (delivered or skipped it)."""
        while self.next_seq.get(room, 0) <= seq:
            self.moved.clear()
            await self.moved.wait()

    async def close(self) -> None:
        readers, self._readers = list(self._readers.values()), {}
        for task in readers:
            task.cancel()
        for task in readers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _read(self, room: str) -> None:
        failing = False
        while True:
            sub = None
            try:
                await self._conn.ensure_room_stream(room)
                sub = await self._conn.js.subscribe(
                    names.room_subject(room),
                    stream=names.room_stream(room),
                    ordered_consumer=True,
                    idle_heartbeat=self._heartbeat_s,
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    config=ConsumerConfig(opt_start_seq=self.next_seq[room]),
                )
                if failing:
                    log.info(_("reading room %s from the cluster again (from #%d)"), room,
                             self.next_seq[room])  # fmt: skip
                    failing = False
                async for msg in sub.messages:
                    self._on_message(room, msg.metadata.sequence.stream, msg.data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS unreachable, no JetStream quorum yet, a closed connection
                if not failing:
                    reason = str(exc) or type(exc).__name__
                    log.warning(_("cannot read room %s from the cluster (%s); retrying"), room, reason)
                failing = True
            finally:
                if sub is not None:
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
            await asyncio.sleep(RESUBSCRIBE_S)  # a back-off between attempts, not a synchronisation

    def _on_message(self, room: str, seq: int, data: bytes) -> None:
        if seq < self.next_seq[room]:
            return  # read again after a consumer was recreated: the replica has it
        self.next_seq[room] = seq + 1
        self.moved.set()
        try:
            record = decode_room_message(data)
        except CodecError as exc:
            log.warning(_("room %s #%d skipped: %s"), room, seq, exc)
            return
        self._deliver(room, seq, record)
