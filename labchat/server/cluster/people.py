"""One set of people across the relays of a cluster: presence, sessions, accounts, private messages.

`ClusterPeople.start(conn, relay, ...)` gives the relay its `Exchange` (exchange.py), starts the four
parts and drains what the relay queues there:

- presence.py: every relay watches the PRESENCE bucket; the rooms list people on other relays.
- sessions.py: this relay's users in that bucket with compare-and-set: one live session per name.
- accounts.py: the ACCOUNTS bucket mirrored into the relay's SQLite; registrations claimed in it.
- privates.py: private messages to users on other relays, and held ones for users online nowhere.
- moderation.py: roles, mutes, bans, invitations and kicks carried out on every relay.
- rooms.py: rooms made or set on one relay exist, alike, on every relay.

The relay stays sans-I/O: it writes to the exchange and calls its `wake`; this asyncio side drains
the exchange on the next pass of the event loop, and feeds results back through relay methods, then
asks the transport to flush (`flush`, the transport's `schedule_flush`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.js.errors

from ..relay import Relay
from .accounts import AccountMirror
from .connection import TRANSIENT, ClusterConnection
from .exchange import Exchange
from .moderation import ModerationShare
from .names import ACCOUNTS_BUCKET, PRESENCE_BUCKET, SETTINGS_BUCKET
from .presence import PresenceWatch
from .privates import ClusterPrivates
from .rooms import RoomShares
from .sessions import SessionClaims

log = logging.getLogger(__name__)


def new_relay_id() -> str:
    """A relay's id for one run: random, hex (a NATS subject token), short enough for logs."""
    return os.urandom(6).hex()


#: How long a relay starting beside a cluster that is itself starting waits for JetStream to place
#: three replicas (its servers find each other a moment after they answer).
PLACEMENT_WAIT_S = 20.0
#: JetStream's "no suitable peers for placement" and "stream not found" (another relay's creation of
#: the same bucket failed that way a moment before): both pass once every server has joined.
_NOT_PLACED_YET = (10005, 10059)

#: How long a stopping relay waits to delete its users' presence entries.
RELEASE_WAIT_S = 2.0

T = TypeVar("T")


async def _placed(make: Callable[[], Awaitable[T]]) -> T:
    """Create a bucket or stream, retried while JetStream cannot place it yet (bounded)."""
    deadline = time.monotonic() + PLACEMENT_WAIT_S
    while True:
        try:
            return await make()
        except TRANSIENT:
            if time.monotonic() >= deadline:  # a loaded or electing cluster answers late: try again
                raise
        except nats.js.errors.APIError as exc:
            not_yet = isinstance(exc, nats.js.errors.BucketNotFoundError) or exc.err_code in _NOT_PLACED_YET
            if not not_yet:
                raise
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(0.2)  # JetStream has no event for "peers joined": retried, bounded


class ClusterPeople:
    """See the module docstring. `await ClusterPeople.start(...)`, then `await close()`."""

    def __init__(
        self, conn: ClusterConnection, relay: Relay, relay_id: str, clock: Callable[[], float],
        flush: Callable[[], None], ttl_s: float,
    ) -> None:  # fmt: skip
        self.conn = conn
        self.relay = relay
        self.relay_id = relay_id
        self.clock = clock
        self.flush = flush
        self.ttl_s = ttl_s
        self.exchange = Exchange(relay_id)
        self._drain_scheduled = False
        self._tasks: list[asyncio.Task[None]] = []
        self.presence: PresenceWatch
        self.claims: SessionClaims
        self.accounts: AccountMirror
        self.privates: ClusterPrivates
        self.moderation: ModerationShare
        self.rooms: RoomShares

    @classmethod
    async def start(
        cls,
        conn: ClusterConnection,
        relay: Relay,
        *,
        flush: Callable[[], None],
        clock: Callable[[], float],
        relay_id: str | None = None,
        ttl_s: float | None = None,
    ) -> ClusterPeople:
        """Join the cluster's people: buckets made if need be, the state at start read (accounts
        mirrored, remote members listed) before this returns, so a login right after sees both.
        `ttl_s`: how long a presence entry outlives its relay (default: the client timeout)."""
        people = cls(
            conn, relay, relay_id or new_relay_id(), clock, flush,
            ttl_s if ttl_s is not None else relay.config.client_timeout_s,
        )  # fmt: skip
        await people._start()
        return people

    async def _start(self) -> None:
        presence_kv = await _placed(lambda: self.conn.bucket(PRESENCE_BUCKET, ttl_s=self.ttl_s))
        accounts_kv = await _placed(lambda: self.conn.bucket(ACCOUNTS_BUCKET))
        settings_kv = await _placed(lambda: self.conn.bucket(SETTINGS_BUCKET))
        loop = asyncio.get_running_loop()
        self.exchange.wake = lambda: self._schedule_drain(loop)
        self.relay.cluster = self.exchange
        self.accounts = AccountMirror(accounts_kv, self.relay, self.clock, self.flush)
        self.presence = PresenceWatch(presence_kv, self.relay, self.relay_id, self.clock, self.flush)
        self.claims = SessionClaims(
            self.conn.nc, presence_kv, self.relay, self.relay_id, self.clock, self.flush
        )
        self.privates = ClusterPrivates(
            self.conn, self.relay, self.clock, self.flush, account_of=self.accounts.read
        )
        self.moderation = ModerationShare(settings_kv, self.relay, self.relay_id, self.clock, self.flush)
        self.rooms = RoomShares(settings_kv, self.relay, self.relay_id, self.clock, self.flush)
        await self.accounts.start()
        await self.presence.start()
        await self.claims.start()
        await _placed(self.privates.start)
        await asyncio.wait_for(self.accounts.synced.wait(), 30)
        await self.rooms.start()  # rooms before moderation: a role or ban needs its room
        await asyncio.wait_for(self.rooms.synced.wait(), 30)
        self.rooms.share_local_rooms()
        await self.moderation.start()
        await asyncio.wait_for(self.presence.synced.wait(), 30)
        await asyncio.wait_for(self.moderation.synced.wait(), 30)
        self._tasks.append(asyncio.create_task(self._refresh_regularly()))
        log.info("relay %s: people shared through the cluster", self.relay_id)

    async def close(self) -> None:
        """Leave: this relay's entries are deleted (its users are gone from the other relays'
        lists at once rather than when the entries expire)."""
        for task in self._tasks:
            task.cancel()
        self.relay.cluster = None
        releases = [self.claims._release(key) for key in list(self.claims.revisions)]
        if releases:
            # At once and bounded: with NATS away each would wait for its timeout, and a relay that
            # stops must not hang on it (the entries then expire after the TTL instead).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*releases, return_exceptions=True), RELEASE_WAIT_S)
        for part in (self.rooms, self.moderation, self.privates, self.claims, self.presence, self.accounts):
            with contextlib.suppress(Exception):
                await part.close()

    # ------------------------------------------------------------ draining the exchange

    def _schedule_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._drain_scheduled:
            self._drain_scheduled = True
            loop.call_soon(lambda: asyncio.ensure_future(self._drain()))

    async def _drain(self) -> None:
        self._drain_scheduled = False
        ex = self.exchange
        keys, ex.presence = ex.presence, set()
        registrations, ex.registrations = ex.registrations, []
        lookups, ex.lookups = ex.lookups, []
        privates, ex.privates = ex.privates, []
        held, ex.held_wanted = ex.held_wanted, []
        moderation, ex.moderation = ex.moderation, []
        rooms, ex.rooms = ex.rooms, []
        if rooms:  # before moderation: a new room's roles and bans come after the room
            self.rooms.send(rooms)
        if moderation:
            self.moderation.send(moderation)
        if lookups:
            self.accounts.look_up(lookups)
        if registrations:
            self.accounts.register(registrations)
        if keys:
            self.claims.changed(keys)
            try:
                await self.privates.track(keys)
            except TRANSIENT as exc:
                log.info("user subjects not updated yet: %s", type(exc).__name__)
        if privates:
            self.privates.send(privates)
        if held:
            self.privates.logged_in(held)

    async def _refresh_regularly(self) -> None:
        """Every third of the TTL: this relay's entries rewritten, expired remote ones let go."""
        while True:
            await asyncio.sleep(self.ttl_s / 3)  # a period, not a wait for an event
            self.claims.refresh()
            try:
                await self.presence.reconcile()
            except TRANSIENT as exc:
                log.info("presence not reconciled this time: %s", type(exc).__name__)
            except Exception:
                log.exception("presence reconciliation")
