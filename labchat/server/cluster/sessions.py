"""One live session per name across the cluster: claims in the presence bucket by compare-and-set.

A single server keeps one session per name by looking in a dictionary: the newest login wins and
the old client hears CLOSED(REPLACED) (logins.py). Across relays the dictionary is the PRESENCE
bucket, and every write to a user's key is a compare-and-set:

- A login here reads the key and writes over exactly the revision it read (`create` if there was
  none). If another relay held the name, that relay is told on `relay_subject(its id)` to end that
  session (named by its id, so a late order never ends a newer one), and it ends it with
  CLOSED(REPLACED) as a single server does.
- Why compare-and-set and not a plain put: two logins of one name on two relays at the same moment
  both read revision N; only one write over N succeeds. The other reads again, sees the winner's
  entry and writes over that one, telling the winner's relay. Every session displaced is displaced
  by a write that saw it, so each is told, and exactly one session remains: the last writer's.
- Later writes of this relay's entry (rooms, away, the refresh that keeps it from expiring) are
  compare-and-set on the revision this relay wrote. One that fails means another relay wrote the key
  since: a newer login there, so the session here is ended (the order may still be on its way).
- A logout deletes the key only if it is still this relay's revision.

Entries expire after the bucket's TTL (about the client timeout) unless refreshed every third of it:
a relay killed with -9 leaves nothing behind for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.kv import KeyValue

from ..formatting import _fmt
from ..relay import Relay
from .codec import CodecError
from .connection import TRANSIENT
from .exchange import RemotePresence
from .names import relay_subject, token
from .presence import decode_presence, encode_presence, state_of

log = logging.getLogger(__name__)

#: Compare-and-set rounds for one write before it is put off to the next drain (each failed round
#: means another relay wrote the key in between: a handful covers any real race).
MAX_CAS_ROUNDS = 8
#: After a write failed because NATS did not answer, wait this long before the next try.
RETRY_S = 0.5


class SessionClaims:
    """Writes this relay's users into the presence bucket (see the module docstring)."""

    def __init__(
        self,
        nc: Client,
        kv: KeyValue,
        relay: Relay,
        relay_id: str,
        clock: Callable[[], float],
        flush: Callable[[], None],
    ) -> None:
        self.nc = nc
        self.kv = kv
        self.relay = relay
        self.relay_id = relay_id
        self.clock = clock
        self.flush = flush
        #: Name key -> the revision of the entry this relay wrote last (while it holds the name).
        self.revisions: dict[str, int] = {}
        self._dirty: dict[str, None] = {}  # in the order the changes came
        self._wake = asyncio.Event()
        #: Set whenever the queue of writes is empty (tests await it).
        self.idle = asyncio.Event()
        self.idle.set()
        self._task: asyncio.Task[None] | None = None
        self._orders: Subscription | None = None
        #: Sessions here ended because of a login on another relay (for the log and tests).
        self.replaced = 0

    async def start(self) -> None:
        self._orders = await self.nc.subscribe(relay_subject(self.relay_id), cb=self._on_order)
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._orders is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._orders.unsubscribe()

    def changed(self, keys: set[str] | list[str]) -> None:
        """These users' presence changed here (login, rooms, away, logout): write them."""
        for key in keys:
            self._dirty[key] = None
        if self._dirty:
            self.idle.clear()
            self._wake.set()

    def refresh(self) -> None:
        """Rewrite every entry this relay holds, so that none expires while its session lives."""
        self.changed(list(self.revisions))

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                key = next(iter(self._dirty))
                del self._dirty[key]
                try:
                    await self._write(key)
                except TRANSIENT as exc:
                    log.info("presence of %s not written yet (%s): retrying", key, type(exc).__name__)
                    self._dirty.setdefault(key, None)
                    await asyncio.sleep(RETRY_S)  # NATS is away: a bounded pause, not a busy loop
                except Exception:
                    log.exception("presence of %s", key)
            self.idle.set()

    async def _write(self, key: str) -> None:
        sess = self.relay.online_by_key.get(key)
        if sess is None or sess.user is None:
            await self._release(key)
            return
        value = encode_presence(state_of(sess, self.relay_id))
        for _round in range(MAX_CAS_ROUNDS):
            if await self._try_write(key, sess.sid.hex(), value, f"{_fmt(sess.addr)}"):
                return
        log.warning("presence of %s: the key kept changing; trying again later", key)
        self._dirty.setdefault(key, None)

    async def _try_write(self, key: str, session: str, value: bytes, where: str) -> bool:
        """One compare-and-set round; False: the key changed under us, look again."""
        tok = token(key)
        rev = self.revisions.get(key)
        if rev is not None:
            try:
                self.revisions[key] = await self.kv.update(tok, value, last=rev)
                return True
            except nats.js.errors.KeyWrongLastSequenceError:
                del self.revisions[key]
            holder = await self._read(tok)
            if holder is not None and holder[0].relay != self.relay_id:
                # Another relay wrote over our entry: a newer login of this name there.
                self.replaced += int(self.relay.end_replaced(key, session, "another server", self.clock()))
                self.flush()
                return True
            # Ours after all (a reply that was lost) or gone (expired): claim it afresh.
        holder = await self._read(tok)
        try:
            if holder is None:
                new_rev = await self.kv.create(tok, value)
            else:
                new_rev = await self.kv.update(tok, value, last=holder[1])
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError):
            return False  # written in between (KeyNotFoundError: see ClusterAccounts.create)
        self.revisions[key] = new_rev
        if holder is not None and holder[0].relay != self.relay_id and holder[0].session != session:
            order = {"op": "replace", "user": key, "session": holder[0].session, "from": where}
            await self.nc.publish(relay_subject(holder[0].relay), json.dumps(order).encode())
            log.info("%s logged in here; told relay %s to end its session", key, holder[0].relay)
        return True

    async def _read(self, tok: str) -> tuple[RemotePresence, int] | None:
        """The entry of a key and its revision; None when there is none (or one we cannot read,
        which a login may take over)."""
        try:
            entry = await self.kv.get(tok)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        if entry.value is None or entry.revision is None:
            return None
        try:
            return decode_presence(entry.value), entry.revision
        except CodecError:
            return RemotePresence("", "", "?"), entry.revision

    async def _release(self, key: str) -> None:
        """The user's session here ended: delete its entry if it is still the one we wrote."""
        rev = self.revisions.pop(key, None)
        if rev is None:
            return
        with contextlib.suppress(nats.js.errors.APIError):  # not ours any more: leave it
            await self.kv.delete(token(key), last=rev)

    async def _on_order(self, msg: Msg) -> None:
        try:
            order = json.loads(msg.data)
            op, key, session, where = order["op"], order["user"], order["session"], order["from"]
            if op != "replace" or not all(isinstance(v, str) for v in (key, session, where)):
                raise ValueError(op)
        except (ValueError, KeyError, TypeError):
            log.warning("relay order skipped: not one of ours")
            return
        if self.relay.end_replaced(key, session, where[:80], self.clock()):
            self.replaced += 1
            self.revisions.pop(key, None)  # the other relay's entry now
            self.flush()
