"""Which relays are running, and where clients reach them (docs/protocol.md 22, docs/cluster.md).

Every relay puts its client address (`--advertise`, else the address it is bound to) in the RELAYS
bucket under a key of its own, and puts it again every `refresh_s`: that is its heartbeat. It watches
the bucket, and a relay it has heard nothing from for `ttl_s` is gone (a kill -9 deletes nothing); a
relay that stops cleanly deletes its key, so the others drop it at once. The bucket's own TTL is the
same, so a dead relay's key does not stay in NATS either.

Each relay's liveness is judged by *this* relay's clock (when it last saw that relay's key written),
never by comparing two machines' clocks. Whenever the list of the others' addresses changes,
`on_change(addresses)` is called on the loop: the owner hands it to `Relay.set_relay_addresses` and
flushes (the relay sends RELAYS to its clients).

This is asyncio glue like connection.py: the rules (who gets RELAYS, when) stay in the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable

import nats.errors
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from ...i18n import _
from ...protocol.messages import format_relay_address, parse_relay_address
from ..transport import RelayServer
from . import names
from .connection import TRANSIENT, ClusterConnection, ClusterUnavailable

log = logging.getLogger(__name__)

#: A relay silent for this long is taken for gone (three missed heartbeats and a bit).
DIRECTORY_TTL_S = 10.0
#: Each relay writes its entry again this often.
DIRECTORY_REFRESH_S = 3.0

Address = tuple[str, int]


def encode_address(address: Address) -> bytes:
    """A bucket value: `HOST:PORT` in UTF-8 (`[v6]:PORT` for an IPv6 address)."""
    return format_relay_address(*address).encode()


def decode_address(value: bytes) -> Address | None:
    """The address in a bucket value, or None for anything that is not a valid relay address."""
    try:
        return parse_relay_address(value.decode("utf-8"))
    except UnicodeDecodeError:
        return None


def client_address(advertise: Address | None, bound: Address) -> Address | None:
    """What clients should be told to use for this relay: `--advertise`, else the bound address,
    except a wildcard one (0.0.0.0 or ::), which no client can send to."""
    if advertise is not None:
        return advertise
    if bound[0] in ("0.0.0.0", "::", ""):
        return None
    return bound


class RelayDirectory:
    """This relay's entry in the RELAYS bucket, and the list of the others'."""

    def __init__(
        self,
        conn: ClusterConnection,
        own: Address | None,
        on_change: Callable[[tuple[Address, ...]], None],
        *,
        relay_id: str | None = None,
        ttl_s: float = DIRECTORY_TTL_S,
        refresh_s: float = DIRECTORY_REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`own`: the address clients should use for this relay; None announces nothing (a relay
        bound to a wildcard address without `--advertise`) but still learns the others."""
        self.conn = conn
        self.own = own
        self.relay_id = relay_id or os.urandom(8).hex()
        self.ttl_s = ttl_s
        self.refresh_s = refresh_s
        self._on_change = on_change
        self._clock = clock
        self._kv: KeyValue | None = None
        self._seen: dict[str, tuple[Address, float]] = {}  # key -> (address, when last written)
        self._published: tuple[Address, ...] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    @classmethod
    async def attach(cls, conn: ClusterConnection, server: RelayServer, **options: float) -> RelayDirectory:
        """Start the directory of a running relay: it announces `--advertise` (else the address the
        relay is bound to, unless that is a wildcard) and feeds the others' addresses into the relay,
        flushing after each change so that its clients get RELAYS at once. `stop()` it on shutdown."""
        relay = server.relay

        def feed(addresses: tuple[Address, ...]) -> None:
            relay.set_relay_addresses(addresses)
            server.protocol.schedule_flush()

        own = client_address(relay.config.advertise, server.address)
        if own is None:
            log.warning(
                _("this relay is bound to %s: give --advertise HOST:PORT so that clients of the other "
                  "relays can move to it"), server.address[0],
            )  # fmt: skip
        directory = cls(conn, own, feed, **options)  # type: ignore[arg-type]
        await directory.start()
        return directory

    @property
    def others(self) -> tuple[Address, ...]:
        """The other relays' addresses now, in a stable order (by address)."""
        own = self.own
        return tuple(sorted({addr for addr, _at in self._seen.values() if addr != own}))

    async def start(self, timeout_s: float = 20.0) -> None:
        """Open the bucket, announce this relay, and follow the others (in the background).

        Retries what a cluster that is still electing its leaders answers ("no responders", a
        timeout) for up to `timeout_s`, then raises ClusterUnavailable."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._kv = await self.conn.bucket(names.RELAYS_BUCKET, ttl_s=self.ttl_s)
                await self._announce()
                break
            except TRANSIENT as exc:
                if time.monotonic() >= deadline:
                    raise ClusterUnavailable(f"the relay directory cannot be opened: {exc}") from None
                await asyncio.sleep(0.2)
        self._publish()  # "no other relay yet" is news too: the relay is one of several from now
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._beat()), loop.create_task(self._watch())]

    async def stop(self) -> None:
        """Stop following, and take this relay out of the bucket so the others drop it at once."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._kv is not None and self.own is not None:
            with contextlib.suppress(Exception):  # NATS may be gone: the TTL then does it
                await asyncio.wait_for(self._kv.delete(self.relay_id), 2.0)

    # ------------------------------------------------------------ background

    async def _announce(self) -> None:
        if self._kv is not None and self.own is not None:
            await self._kv.put(self.relay_id, encode_address(self.own))

    async def _beat(self) -> None:
        """Write our entry every `refresh_s`, and forget relays not heard from for `ttl_s`."""
        while not self._closed:
            await asyncio.sleep(self.refresh_s)
            try:
                await self._announce()
            except Exception as exc:  # NATS away: the connection reconnects; we try next beat
                log.debug("relay directory: cannot write our entry: %s", exc)
            self._sweep()

    async def _watch(self) -> None:
        """Follow every write and delete in the bucket; start over if the watch breaks."""
        while not self._closed:
            assert self._kv is not None
            try:
                watcher = await self._kv.watchall()
            except Exception as exc:
                log.debug("relay directory: cannot watch: %s", exc)
                await asyncio.sleep(min(1.0, self.refresh_s))
                continue
            try:
                while not self._closed:
                    try:
                        entry = await watcher.updates(timeout=self.refresh_s)
                    except nats.errors.TimeoutError:
                        self._sweep()
                        continue
                    if entry is None:
                        continue  # the end of the values that existed when the watch began
                    self._on_entry(entry.key, entry.value, entry.operation)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("relay directory: the watch broke, starting over: %s", exc)
            finally:
                with contextlib.suppress(Exception):
                    await watcher.stop()

    def _on_entry(self, key: str, value: bytes | None, operation: str | None) -> None:
        if key == self.relay_id:
            return
        if operation in (KV_DEL, KV_PURGE):
            self._seen.pop(key, None)
        else:
            address = decode_address(value or b"")
            if address is None:
                log.warning("relay directory: entry %s does not hold a relay address; ignored", key)
                return
            self._seen[key] = (address, self._clock())
        self._publish()

    def _sweep(self) -> None:
        cutoff = self._clock() - self.ttl_s
        for key, (_address, at) in list(self._seen.items()):
            if at < cutoff:
                del self._seen[key]
        self._publish()

    def _publish(self) -> None:
        others = self.others
        if others != self._published:
            self._published = others
            self._on_change(others)
