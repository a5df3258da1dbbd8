"""Private messages between relays, and held ones any relay can deliver.

- Each relay subscribes to `user_subject(user)` for every user logged in on it. A PRIVATE for a user
  not on the sending relay is a NATS request on that subject: the relay holding the user delivers it
  (`PrivateMessages.deliver_remote`) and replies; the sender hears ACCEPTED only then, as on a single
  server only once it is delivered or held.
- No relay answers (the user is online nowhere, or left in between): the message is held in the
  HELD stream, on `held_subject(user)`, with `Nats-Msg-Id` = sender and msg_id so that a resend is
  held once. JetStream stores it on a quorum before the sender hears ACCEPTED: a confirmed private
  message survives any one relay or NATS node. Held ones expire after HELD_TTL_S, at most
  MAX_HELD_PER_USER per recipient, as on a single server (docs/protocol.md 16.2).
- At a login, the relay moves the user's held messages from the stream into its own SQLite (then
  deletes them from the stream) and delivers them as a single server does: FLAG_HELD, original time,
  rows deleted once the client has acknowledged them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import StorageType, StreamConfig

from ...protocol import messages as m
from ..privates import HELD_TTL_S, MAX_HELD_PER_USER
from ..relay import Relay
from .codec import AccountValue, CodecError
from .connection import TRANSIENT, ClusterConnection
from .exchange import OutgoingPrivate
from .names import HELD_STREAM, HELD_SUBJECTS, held_subject, msg_id_header, user_subject

log = logging.getLogger(__name__)

VERSION = 1
#: How long the relay holding the recipient has to answer before the message is held instead.
DELIVER_TIMEOUT_S = 2.0
#: How long a private message may wait for NATS before the sender is told to resend later.
STORE_DEADLINE_S = 10.0
#: How long a user listed online but with no relay answering for it is asked again before the
#: message is held (a relay subscribes within milliseconds of a login; longer means it is gone).
LISTED_GRACE_S = 2.0
#: Private messages a relay remembers having delivered, so that one asked again is delivered once.
RECENT_DELIVERIES = 10_000


def encode_private(p: OutgoingPrivate) -> bytes:
    return json.dumps(
        {"v": VERSION, "from": p.sender, "to": p.to, "ts": p.ts_ms, "text": p.text, "flags": p.flags,
         "id": p.msg_id},
        ensure_ascii=False, separators=(",", ":"),
    ).encode("utf-8")  # fmt: skip


def decode_private(data: bytes) -> OutgoingPrivate:
    """A private message from NATS, checked as untrusted input: CodecError for anything else."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CodecError(f"not a labchat private message: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != VERSION:
        raise CodecError("not a labchat private message (unknown format)")
    sender, to, ts, text, flags, msg_id = (obj.get(k) for k in ("from", "to", "ts", "text", "flags", "id"))
    if not (isinstance(sender, str) and isinstance(to, str) and isinstance(text, str)
            and all(isinstance(x, int) and not isinstance(x, bool) for x in (ts, flags, msg_id))):
        raise CodecError("not a labchat private message (bad fields)")
    assert isinstance(ts, int) and isinstance(flags, int) and isinstance(msg_id, int)
    if not (m.is_valid_name(sender) and m.is_valid_name(to) and 0 <= ts < 2**63 and 0 <= flags < 2**32
            and 0 <= msg_id < 2**64 and len(text) <= m.MAX_LONG_TEXT_BYTES):
        raise CodecError("not a labchat private message (field out of range)")
    return OutgoingPrivate(b"", sender, to, ts, text, flags, msg_id)


class ClusterPrivates:
    """See the module docstring."""

    def __init__(
        self, conn: ClusterConnection, relay: Relay, clock: Callable[[], float], flush: Callable[[], None],
        account_of: Callable[[str], Awaitable[AccountValue | None]] | None = None,
    ) -> None:  # fmt: skip
        """`account_of`: reads a name's account from the cluster (accounts.AccountMirror.read), for
        a recipient this relay has no copy of yet; None: this relay's copy is taken as complete."""
        self.conn = conn
        self.account_of = account_of
        self.nc: Client = conn.nc
        self.relay = relay
        self.clock = clock
        self.flush = flush
        self._subs: dict[str, Subscription] = {}  # name key -> its user_subject subscription
        #: (sender key, msg_id) of private messages delivered here lately, with the answer given.
        self._delivered: OrderedDict[tuple[str, int], tuple[bool, str]] = OrderedDict()
        self._outgoing: asyncio.Queue[OutgoingPrivate] = asyncio.Queue()
        self._held_wanted: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        #: Counters for the log and tests.
        self.delivered_remotely = 0
        self.held = 0
        self.moved_in = 0

    async def start(self) -> None:
        config = StreamConfig(
            name=HELD_STREAM, subjects=[HELD_SUBJECTS], num_replicas=self.conn.replicas,
            storage=StorageType.FILE, max_age=float(HELD_TTL_S), duplicate_window=120.0,
        )  # fmt: skip
        try:
            await self.conn.js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await self.conn.js.stream_info(HELD_STREAM)  # made already, by another relay
        self._tasks = [asyncio.create_task(self._send_loop()), asyncio.create_task(self._held_loop())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for sub in list(self._subs.values()):
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        self._subs.clear()

    # ------------------------------------------------------------ who is here

    async def track(self, keys: set[str]) -> None:
        """Subscribe to the user subjects of the users now online here, drop the others'."""
        for key in keys:
            here = key in self.relay.online_by_key
            if here and key not in self._subs:
                self._subs[key] = await self.nc.subscribe(user_subject(key), cb=self._on_private)
            elif not here and key in self._subs:
                with contextlib.suppress(nats.errors.Error):
                    await self._subs.pop(key).unsubscribe()

    # ------------------------------------------------------------ sending

    def send(self, privates: list[OutgoingPrivate]) -> None:
        """Queue them; they go one at a time, in order (one sender's lines are never reordered)."""
        for private in privates:
            self._outgoing.put_nowait(private)

    async def _send_loop(self) -> None:
        while True:
            private = await self._outgoing.get()
            try:
                outcome, detail = await self._send_one(private)
            except Exception:
                log.exception("private message to %s", private.to)
                outcome, detail = "unavailable", ""
            self.relay.privates.remote_done(private, outcome, detail, self.clock())
            self.flush()

    async def _send_one(self, private: OutgoingPrivate) -> tuple[str, str]:
        """Deliver through the relay holding the user; hold it only when no relay holds the user.
        A slow answer is asked again (the same message: the receiving relay delivers it once)."""
        payload = encode_private(private)
        started = time.monotonic()
        deadline = started + STORE_DEADLINE_S
        while True:
            try:
                reply = await self.nc.request(user_subject(private.to), payload, timeout=DELIVER_TIMEOUT_S)
                answer = json.loads(reply.data)
                if not isinstance(answer, dict) or answer.get("ok") is not True:
                    break  # that relay no longer has the user: it left in between
                self.delivered_remotely += 1
                away = answer.get("away")
                return "delivered", away if isinstance(away, str) else ""
            except nats.errors.NoRespondersError:
                # No relay subscribes to the user. One that has just logged the user in subscribes a
                # moment after the presence entry appears: while the user is listed, ask again for a
                # little while; past that the listing is a dead relay's, not yet expired: hold it.
                if not self._listed(private.to) or time.monotonic() - started >= LISTED_GRACE_S:
                    break
            except ValueError:
                break
            except TRANSIENT:
                pass  # a slow or electing cluster: ask again (a timeout is no proof of absence)
            if time.monotonic() >= deadline:
                return "unavailable", ""
            await asyncio.sleep(0.05)  # bounded by the deadline; NATS has no event for "subscribed"
        return await self._hold(private, payload)

    def _listed(self, user: str) -> bool:
        cluster = self.relay.cluster
        return cluster is not None and m.name_key(user) in cluster.remote

    async def _hold(self, private: OutgoingPrivate, payload: bytes) -> tuple[str, str]:
        """Held for the recipient's next login, if it has an account ("unknown" if it has none,
        as a single server refuses to hold for a name with no account, 16.2)."""
        account = self.relay.store.get_account(private.to)
        name = account.name if account is not None else private.to
        if account is None and self.account_of is not None:
            found = await self.account_of(private.to)  # signed up a moment ago elsewhere? (22.4)
            if found is None:
                return "unknown", ""
            name = found.name
        subject = held_subject(private.to)
        deadline = time.monotonic() + STORE_DEADLINE_S
        while time.monotonic() < deadline:
            try:
                info = await self.conn.js.stream_info(HELD_STREAM, subjects_filter=subject)
                waiting = (info.state.subjects or {}).get(subject, 0)
                if waiting >= MAX_HELD_PER_USER:
                    return "full", name
                headers = {"Nats-Msg-Id": msg_id_header(private.sender, private.msg_id)}
                await self.conn.js.publish(subject, payload, timeout=2.0, headers=headers)
                self.held += 1
                return "held", name
            except TRANSIENT:
                await asyncio.sleep(0.2)  # a leader election: bounded by the deadline
        return "unavailable", ""

    # ------------------------------------------------------------ receiving

    async def _on_private(self, msg: Msg) -> None:
        try:
            private = decode_private(msg.data)
        except CodecError as exc:
            log.warning("private message from NATS skipped: %s", exc)
            return
        seen = (m.name_key(private.sender), private.msg_id)
        known = self._delivered.get(seen)
        if known is not None:  # asked again after a slow answer: delivered once, answered again
            delivered, away = known
        else:
            delivered, away = self.relay.privates.deliver_remote(
                private.sender, private.to, private.ts_ms, private.text, private.flags
            )
            if delivered:
                self._delivered[seen] = (delivered, away)
                while len(self._delivered) > RECENT_DELIVERIES:
                    self._delivered.popitem(last=False)
            self.flush()
        if msg.reply:
            with contextlib.suppress(nats.errors.Error):
                await msg.respond(json.dumps({"ok": delivered, "away": away}).encode())

    # ------------------------------------------------------------ held messages at login

    def logged_in(self, users: list[str]) -> None:
        for user in users:
            self._held_wanted.put_nowait(user)

    async def _held_loop(self) -> None:
        while True:
            user = await self._held_wanted.get()
            try:
                await self._move_held(user)
            except TRANSIENT as exc:
                log.info("held messages of %s not fetched yet (%s)", user, type(exc).__name__)
            except Exception:
                log.exception("held messages of %s", user)

    async def _move_held(self, user: str) -> None:
        """The user's held messages, from the stream into this relay's store, then delivered."""
        subject = held_subject(user)
        info = await self.conn.js.stream_info(HELD_STREAM, subjects_filter=subject)
        if not (info.state.subjects or {}).get(subject):
            return
        seq, moved = 0, 0
        while True:
            try:
                raw = await self.conn.js.get_msg(HELD_STREAM, seq=seq + 1, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                break
            seq = raw.seq or seq + 1
            try:
                private = decode_private(raw.data or b"")
            except CodecError as exc:
                log.warning("held message skipped: %s", exc)
            else:
                store = self.relay.store
                if store.find_held(private.sender, private.msg_id) is None:
                    store.hold_private(
                        private.sender, private.to, private.ts_ms, private.text, private.flags, private.msg_id
                    )  # committed before the stream's copy goes: a crash between keeps it twice, never none
                moved += 1
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self.conn.js.delete_msg(HELD_STREAM, seq)
        if moved:
            self.moved_in += moved
            log.info("%s: %d held private message(s) moved here from the cluster", user, moved)
            self.relay.privates.deliver_cluster_held(user, self.clock())
            self.flush()
