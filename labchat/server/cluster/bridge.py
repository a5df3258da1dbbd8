"""The asyncio glue between one relay (server/transport.py's RelayProtocol) and the cluster.

The relay stays sans-I/O (backplane.py says what it hands over). After each flush this bridge takes
the relay's outbox and publishes it: one sender's lines in one room one at a time, in arrival order
(a retry after a node's death can then never put a user's later line before an earlier one), and
different senders and rooms side by side (their relative order is the stream's to decide, as it
is for senders on different relays). It follows the stream of every room the relay
opens (room_streams.py) and feeds what it reads back into the relay, then flushes, so one flush
commits and fans out everything read meanwhile.

Other cluster parts (presence, sessions, directory) use the same bridge:

    bridge = await ClusterBridge.start(server, conn)
    bridge.conn                      # the ClusterConnection (JetStream, buckets)
    bridge.feed(lambda relay, now: relay.something(..., now))   # into the relay, then one flush
    bridge.on_reachable(callback)    # callback(bool): NATS lost / back
    bridge.spawn(coroutine)          # a background task, cancelled by close()
    bridge.on_close(part.close)      # awaited first by close(), the last registered first
    await bridge.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import nats.js.errors

from ...i18n import _
from ...protocol import messages as m
from ..backplane import ClusterBackplane, Outgoing
from ..relay import Relay
from ..store import StoredMessage
from ..transport import RelayServer
from . import names
from .codec import RoomRecord, encode_room_message
from .connection import ClusterConnection, ClusterUnavailable
from .room_streams import RoomStreams

log = logging.getLogger(__name__)

#: How long a starting relay keeps logins waiting while its replica catches up with the streams,
#: and how often it tells them they are still waiting (each LOGIN_QUEUED extends a client's wait).
CATCH_UP_S = 30.0
LOGIN_QUEUED_EVERY_S = 2.0
#: How long the cluster may take to store one message before the sender hears "not now" (22.6):
#: long enough to ride out one node's death and the leader election after it.
PUBLISH_DEADLINE_S = 5.0


class ClusterBridge:
    """Connects a running RelayServer whose relay has a `ClusterBackplane` to the cluster."""

    def __init__(
        self, server: RelayServer, conn: ClusterConnection, *, publish_deadline_s: float = PUBLISH_DEADLINE_S
    ) -> None:
        backplane = server.relay.backplane
        if backplane is None:
            raise ValueError("the relay was made without a ClusterBackplane: it is not in cluster mode")
        self.server = server
        self.protocol = server.protocol
        self.relay: Relay = server.relay
        self.backplane: ClusterBackplane = backplane
        self.conn = conn
        self.publish_deadline_s = publish_deadline_s
        self.streams = RoomStreams(conn, self._stored, self._replica_last_seq)
        conn.room_max_age_s = self.relay.config.retention.max_age_s or 0.0
        #: (room, sender's name key) -> its lines waiting to be published, and the task publishing them.
        self._queues: dict[tuple[str, str], deque[Outgoing]] = {}
        self._publishers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reachable_listeners: list[Callable[[bool], None]] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._closed = False
        self._replica_moved = asyncio.Event()  # set whenever the stream fed the relay something
        #: Messages the cluster stored for this relay's senders, and how many were resends it knew.
        self.published = 0
        self.duplicates = 0

    @classmethod
    async def start(
        cls, server: RelayServer, conn: ClusterConnection, *, publish_deadline_s: float = PUBLISH_DEADLINE_S,
        catch_up_s: float = CATCH_UP_S,
    ) -> ClusterBridge:
        """Attach to the server: follow the rooms it has, and everything it opens or sends from now.
        Logins wait ("busy, try again") until the replica has caught up with every room's stream, or
        `catch_up_s` has passed (then it goes on catching up while serving)."""
        bridge = cls(server, conn, publish_deadline_s=publish_deadline_s)
        bridge.backplane.ready = False
        conn.on_reachable = bridge._reachable
        bridge.protocol.after_flush.append(bridge._after_flush)
        bridge._after_flush()  # the rooms opened before the bridge existed
        if not conn.nc.is_connected:
            bridge._reachable(False)
        catching_up = asyncio.get_running_loop().create_task(bridge._catch_up())
        deadline = time.monotonic() + catch_up_s
        while not catching_up.done():
            left = deadline - time.monotonic()
            if left <= 0:
                catching_up.cancel()
                text = _("the local copy of the rooms is still catching up after %g s; serving meanwhile")
                log.warning(text, catch_up_s)
                break
            await asyncio.wait({catching_up}, timeout=min(left, LOGIN_QUEUED_EVERY_S))
            if not catching_up.done():
                bridge.feed(lambda relay, now: relay.cluster_starting(now))
        bridge.feed(lambda relay, now: relay.cluster_ready(now))
        return bridge

    async def _catch_up(self) -> None:
        """Until the replica holds every followed room's stream as it was when we looked."""
        for room in self.streams.rooms:
            while True:
                try:
                    info = await self.conn.js.stream_info(names.room_stream(room))
                    break
                except nats.js.errors.NotFoundError:
                    info = None  # nobody wrote to this room yet
                    break
                except Exception:  # no quorum yet, a timeout: the cluster is still starting
                    await asyncio.sleep(0.2)  # a retry back-off, bounded by the caller's timeout
            if info is not None and info.state.last_seq:
                await self.streams.reached(room, info.state.last_seq)

    # ------------------------------------------------------------ the API for other cluster parts

    def feed(self, event: Callable[[Relay, float], None]) -> None:
        """Run `event(relay, now)` on the loop, then flush once (many feeds in one pass share it)."""
        if self._closed:
            return
        try:
            event(self.relay, self.protocol.clock())
        except Exception:
            self.protocol.internal_errors += 1
            log.exception("internal error while feeding the relay from the cluster")
        self.protocol.schedule_flush()

    def on_reachable(self, callback: Callable[[bool], None]) -> None:
        self._reachable_listeners.append(callback)

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """`await closer()` first thing in `close()` (the last registered first): a part that
        rides on the bridge (people, directory) leaves the cluster before the bridge stops."""
        self._closers.append(closer)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait_stored(self, room: str, seq: int, timeout: float) -> None:
        """Until the local replica of `room` holds `seq` (raises TimeoutError after `timeout` s): what a
        relay just started, or one that was cut off, has caught up to."""

        async def caught_up() -> None:
            while self._replica_last_seq(room) < seq:
                self._replica_moved.clear()
                await self._replica_moved.wait()

        await asyncio.wait_for(caught_up(), timeout)

    async def close(self) -> None:
        """Stop reading and publishing (what is still queued is not confirmed: clients resend it)."""
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:
                log.exception("internal error while leaving the cluster")
        self._closers.clear()
        self._closed = True
        with contextlib.suppress(ValueError):
            self.protocol.after_flush.remove(self._after_flush)
        tasks = [*self._publishers.values(), *self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.streams.close()

    # ------------------------------------------------------------ relay -> cluster

    def _after_flush(self) -> None:
        if self._closed:
            return
        backplane = self.backplane
        if backplane.rooms_to_follow:
            for room in backplane.take_rooms():
                self.streams.follow(room)
        if backplane.outbox:
            for out in backplane.take_outbox():
                lane = (out.room, m.name_key(out.user))
                self._queues.setdefault(lane, deque()).append(out)
                self._start_publisher(lane)

    def _start_publisher(self, lane: tuple[str, str]) -> None:
        if lane not in self._publishers:
            self._publishers[lane] = asyncio.get_running_loop().create_task(self._publish(lane))

    async def _publish(self, lane: tuple[str, str]) -> None:
        """Publish one sender's lines in one room one by one; on a failure refuse that line and
        every line of the sender queued behind it (22.6), so none overtakes it."""
        room = lane[0]
        queue = self._queues[lane]
        try:
            while queue:
                out = queue[0]
                record = RoomRecord(out.ts_ms, out.user, out.text, out.flags, out.msg_id)
                deadline = time.monotonic() + self.publish_deadline_s
                try:
                    published = await self.conn.publish_room(
                        room, encode_room_message(record), names.msg_id_header(out.user, out.msg_id), deadline
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # ClusterUnavailable, or NATS refusing outright
                    refused = list(queue)
                    queue.clear()
                    self._refuse(room, refused, exc)
                    return
                queue.popleft()
                self.published += 1
                self.duplicates += published.duplicate
                self.feed(functools.partial(_published, out, published.seq))
        finally:
            del self._publishers[lane]
            if queue and not self._closed:  # arrived after a failure: a new round
                self._start_publisher(lane)
            elif not queue:
                del self._queues[lane]

    def _refuse(self, room: str, refused: list[Outgoing], exc: Exception) -> None:
        if isinstance(exc, ClusterUnavailable):
            reason = "the cluster did not store it in time"
        else:
            reason = f"the cluster refused it: {exc or type(exc).__name__}"
        log.warning(_("%d message(s) of %s not stored: %s"), len(refused), room, reason)
        self.feed(functools.partial(_refused, refused, reason))

    # ------------------------------------------------------------ cluster -> relay

    def _replica_last_seq(self, room: str) -> int:
        found = self.relay.rooms.get(room)
        return found.next_seq - 1 if found is not None else self.relay.store.last_seq(room)

    def _stored(self, room: str, seq: int, record: RoomRecord) -> None:
        stored = StoredMessage(room, seq, record.ts_ms, record.user, record.text, record.flags, record.msg_id)
        self.feed(lambda relay, now: relay.room_message_stored(stored, now))
        self._replica_moved.set()

    def _reachable(self, reachable: bool) -> None:
        if reachable:
            log.warning(_("connected to the cluster again"))
        else:
            log.warning(_("lost the connection to the cluster; reconnecting"))
        self.feed(lambda relay, now: relay.set_cluster_reachable(reachable, now))
        for listener in self._reachable_listeners:
            try:
                listener(reachable)
            except Exception:
                log.exception("internal error in a cluster reachability listener")


def _published(out: Outgoing, seq: int, relay: Relay, now: float) -> None:
    relay.room_message_published(out.room, out.user, out.msg_id, seq, now)


def _refused(refused: list[Outgoing], reason: str, relay: Relay, now: float) -> None:
    for out in refused:
        relay.room_message_refused(out.room, out.user, out.msg_id, reason, now)
