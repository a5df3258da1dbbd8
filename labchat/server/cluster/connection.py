"""One relay's connection to the NATS cluster: connect, streams per room, publish with dedup, buckets.

This is the asyncio side (like server/transport.py): nothing here decides what a message means, it
only moves it to and from JetStream. The rules stay in the sans-I/O relay.

Publishing retries on the errors a NATS node's death or a leader election causes (no responders, no
response from the stream, a timeout) until the caller's deadline: the same `Nats-Msg-Id` on every try,
so a publish that was stored but whose PubAck was lost is not stored twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType, StreamConfig
from nats.js.kv import KeyValue

from . import names

log = logging.getLogger(__name__)

#: How long one publish attempt waits for its PubAck before trying again (a leader election takes
#: about a second or two in a three-node cluster).
PUBLISH_ATTEMPT_S = 2.0
#: Replicas of every stream and bucket: three is what survives one node's loss (RAFT quorum of 2).
DEFAULT_REPLICAS = 3

#: The errors that mean "not now" rather than "never": retried until the deadline.
TRANSIENT = (
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.js.errors.NoStreamResponseError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    asyncio.TimeoutError,
)


def parse_urls(text: str) -> list[str]:
    """`--cluster`'s value: comma-separated `nats://HOST:PORT` (or bare `HOST:PORT`, or `tls://...`).

    Raises:
        ValueError: with a one-line reason naming the bad part.
    """
    urls: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        url = part if "://" in part else f"nats://{part}"
        try:
            parsed = urllib.parse.urlsplit(url)
            port = parsed.port
        except ValueError:
            raise ValueError(f"{part!r} is not a NATS address (nats://HOST:PORT)") from None
        if parsed.scheme not in ("nats", "tls") or not parsed.hostname or port is None or port == 0:
            raise ValueError(f"{part!r} is not a NATS address (nats://HOST:PORT)")
        urls.append(url)
    if not urls:
        raise ValueError("no NATS address given (nats://HOST:PORT[,nats://HOST:PORT...])")
    return urls


#: JetStream's error code for "a stream of that name exists with another configuration".
STREAM_NAME_IN_USE = 10058


class ClusterUnavailable(Exception):
    """NATS could not store or answer before the deadline: the relay refuses rather than confirms."""


@dataclass(frozen=True, slots=True)
class Published:
    seq: int  # the stream sequence: the room's seq
    duplicate: bool  # JetStream had this Nats-Msg-Id already (a resend): seq is the original's


class ClusterConnection:
    """A connected relay: `await ClusterConnection.connect(urls)`, then use, then `close()`."""

    def __init__(self, nc: Client, replicas: int) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.replicas = replicas
        self._streams: set[str] = set()
        #: How long a room stream made by this relay keeps messages (0: for ever): the relay's
        #: `--history-days`, so the cluster forgets what a single server would have pruned.
        self.room_max_age_s = 0.0
        #: Called with True/False when the connection to NATS is lost or back (the relay's status).
        self.on_reachable: Callable[[bool], None] | None = None

    @classmethod
    async def connect(
        cls, urls: list[str], *, name: str = "labchat-relay", replicas: int = DEFAULT_REPLICAS,
        connect_timeout_s: float = 5.0,
    ) -> ClusterConnection:
        """Connect to any of `urls`; reconnects for ever afterwards (NATS's own client does)."""
        holder: list[ClusterConnection] = []

        async def disconnected() -> None:
            if holder and holder[0].on_reachable:
                holder[0].on_reachable(False)

        async def reconnected() -> None:
            if holder and holder[0].on_reachable:
                holder[0].on_reachable(True)

        async def error(exc: Exception) -> None:
            log.debug("NATS: %s", exc)

        nc = await nats.connect(
            servers=urls,
            name=name,
            connect_timeout=connect_timeout_s,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            allow_reconnect=True,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
        conn = cls(nc, replicas)
        holder.append(conn)
        return conn

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.drain()

    # ------------------------------------------------------------ room streams

    async def ensure_room_stream(self, room: str, *, max_age_s: float | None = None) -> None:
        """Create the room's stream if it does not exist (idempotent; cached once it does). A stream
        that exists keeps its own limits: the first relay to open a room sets them."""
        if max_age_s is None:
            max_age_s = self.room_max_age_s
        stream = names.room_stream(room)
        if stream in self._streams:
            return
        config = StreamConfig(
            name=stream,
            subjects=[names.room_subject(room)],
            num_replicas=self.replicas,
            storage=StorageType.FILE,
            max_age=max_age_s or None,
            duplicate_window=120.0,
        )
        try:
            await self.js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != STREAM_NAME_IN_USE:
                raise  # e.g. "insufficient resources" while the peers join: the callers retry
            await self.js.stream_info(stream)  # exists with another config: use it as it is
        self._streams.add(stream)

    async def publish_room(self, room: str, payload: bytes, msg_id: str, deadline: float) -> Published:
        """Store one room message; returns its room seq. Raises ClusterUnavailable at `deadline`
        (time.monotonic()), having retried what may pass."""
        subject = names.room_subject(room)
        headers = {"Nats-Msg-Id": msg_id}
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClusterUnavailable(f"NATS did not store a message for {room} in time")
            try:
                await asyncio.wait_for(self.ensure_room_stream(room), min(PUBLISH_ATTEMPT_S, left))
                ack = await self.js.publish(
                    subject, payload, timeout=min(PUBLISH_ATTEMPT_S, left), headers=headers
                )
                return Published(ack.seq, bool(ack.duplicate))
            except TRANSIENT:
                pass
            except (nats.js.errors.BadRequestError, nats.js.errors.ServiceUnavailableError) as exc:
                if isinstance(exc, nats.js.errors.BadRequestError) and exc.err_code == STREAM_NAME_IN_USE:
                    raise
                # The stream cannot be placed yet (peers still joining, no quorum): not now.
            await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    # ------------------------------------------------------------ buckets

    async def bucket(self, name: str, *, ttl_s: float = 0.0, history: int = 1) -> KeyValue:
        """A KV bucket, created on first use with this cluster's replicas."""
        try:
            return await self.js.key_value(name)
        except nats.js.errors.BucketNotFoundError:
            pass
        config = KeyValueConfig(
            bucket=name, history=history, ttl=ttl_s or None, replicas=self.replicas,
            storage=StorageType.FILE,
        )
        try:
            return await self.js.create_key_value(config)
        except nats.js.errors.BadRequestError:
            return await self.js.key_value(name)  # another relay created it first
