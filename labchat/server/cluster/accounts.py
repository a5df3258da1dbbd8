"""A cluster's accounts: the ACCOUNTS bucket, mirrored into each relay's SQLite.

One key per account (`names.token` of the name); the value holds what a login needs to check a
password (salt, scrypt digest and parameters), the admin flag and when it was made. Never a password.

- Each relay watches the bucket and writes every account into its own SQLite (`Store.mirror_account`),
  and deletes removed ones, so a login stays what it is on a single server: a synchronous read of the
  local database and scrypt off the event loop. An account made on any relay logs in on every one.
- A registration (the first login of an unknown name) claims the name in the bucket with `create`,
  a compare-and-set on absence: when two relays register one name at once, one `create` wins and the
  other login fails cleanly (NAME_IN_USE, "log in again"); the winner's account reaches every relay.
- `labchat-admin --cluster URLS add/remove/passwd/list/grant/revoke` works on the bucket itself
  (`ClusterAccounts`); the relays' mirrors follow within a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from ...protocol import messages as m
from ...protocol.messages import Login
from ..accounts import PasswordCheck
from ..relay import Relay
from ..store import SCRYPT_P, SCRYPT_R, Store, StoreError, hash_password
from .codec import AccountValue, CodecError, decode_account, encode_account
from .connection import TRANSIENT
from .names import token

log = logging.getLogger(__name__)

#: Bounds a mirrored account must meet besides the codec's: scrypt's n a power of two, and costs that
#: keep a hostile entry from making a relay's login check take its memory or minutes.
MAX_SCRYPT_N = 2**20


def checked_account(data: bytes) -> AccountValue:
    """A bucket value (codec.decode_account's format, shared with `labchat-admin import`), and
    parameters a relay can afford to check a password with; CodecError otherwise."""
    account = decode_account(data)
    n, r, p = account.n, account.r, account.p
    if not (m.is_valid_name(account.name) and 1 < n <= MAX_SCRYPT_N and n & (n - 1) == 0 and r <= 32
            and p <= 16 and 0 < len(account.salt) <= 64 and len(account.digest) == 32):
        raise CodecError("not a labchat account (field out of range)")
    return account


#: How long a login waits for the bucket's answer about a name this relay has no account for.
LOOKUP_TIMEOUT_S = 2.0

#: How long `labchat-admin --cluster` retries what a loaded or electing cluster did not answer.
ADMIN_DEADLINE_S = 15.0

T = TypeVar("T")


async def _retried(op: Callable[[], Awaitable[T]], deadline_s: float = ADMIN_DEADLINE_S) -> T:
    """`op()`, tried again on the errors a leader election or a slow cluster gives (bounded)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return await op()
        except TRANSIENT:
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(0.2)  # an election takes about a second: polled, bounded


class ClusterAccounts:
    """The ACCOUNTS bucket: what `labchat-admin --cluster` and a registering relay do to it."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def get(self, name: str) -> tuple[AccountValue, int] | None:
        """The account and its revision, or None."""
        try:
            entry = await _retried(lambda: self.kv.get(token(name)))
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        if entry.value is None or entry.revision is None:
            return None
        return checked_account(entry.value), entry.revision

    async def create(self, record: AccountValue) -> bool:
        """Add the account unless the name is taken (compare-and-set on absence)."""
        try:
            await _retried(lambda: self.kv.create(token(record.name), encode_account(record)))
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError):
            # KeyNotFoundError: nats-py's `create` looks the key up after a failed compare-and-set,
            # and a replica that has not applied the winner's write yet says "not found".
            return False
        return True

    async def change(self, name: str, how: Callable[[AccountValue], AccountValue]) -> AccountValue | None:
        """Rewrite an account with `how` (compare-and-set, retried on a concurrent change); None:
        no such account."""
        while True:
            found = await self.get(name)
            if found is None:
                return None
            record = how(found[0])
            try:
                await _retried(partial(self.kv.update, token(name), encode_account(record), last=found[1]))
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            return record

    async def remove(self, name: str) -> bool:
        if await self.get(name) is None:
            return False
        await _retried(lambda: self.kv.delete(token(name)))
        return True

    async def all(self) -> list[AccountValue]:
        """Every account, by name key; entries that do not decode are skipped with a warning."""
        try:
            keys = await _retried(self.kv.keys)
        except nats.js.errors.NoKeysError:
            return []
        out = []
        for key in sorted(keys):
            try:
                found = await self.get(bytes.fromhex(key).decode("utf-8", "replace"))
            except CodecError as exc:
                log.warning("account entry %s skipped: %s", key, exc)
                continue
            if found is not None:
                out.append(found[0])
        return sorted(out, key=lambda r: m.name_key(r.name))


def record_of_check(check: PasswordCheck) -> AccountValue:
    """The account a registration's password check made (its hash was computed off the loop)."""
    assert check.new_hash is not None
    salt, digest = check.new_hash
    return AccountValue(
        check.login.user, salt, digest, check.scrypt_n, SCRYPT_R, SCRYPT_P, False, int(time.time() * 1000)
    )


def new_account(name: str, password: str, scrypt_n: int, admin: bool = False) -> AccountValue:
    """An account for `labchat-admin --cluster add`: a fresh salt, the password's scrypt digest."""
    salt = os.urandom(16)
    digest = hash_password(password, salt, scrypt_n, SCRYPT_R, SCRYPT_P)
    return AccountValue(name, salt, digest, scrypt_n, SCRYPT_R, SCRYPT_P, admin, int(time.time() * 1000))


class AccountMirror:
    """Keeps the relay's SQLite a replica of the bucket, and claims registrations in it."""

    def __init__(
        self, kv: KeyValue, relay: Relay, clock: Callable[[], float], flush: Callable[[], None]
    ) -> None:
        self.accounts = ClusterAccounts(kv)
        self.relay = relay
        self.store: Store = relay.store
        self.clock = clock
        self.flush = flush
        #: Set once the bucket's accounts at start are in the local database.
        self.synced = asyncio.Event()
        #: Set after each entry the watch applied (`wait_until` waits on it).
        self.applied_one = asyncio.Event()
        self._watcher: Any = None
        self._task: asyncio.Task[None] | None = None
        self._claims: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._watcher = await self.accounts.kv.watchall()
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        for task in [self._task, *self._claims]:
            if task is not None:
                task.cancel()
        if self._watcher is not None:
            with contextlib.suppress(TimeoutError, nats.errors.Error):
                await self._watcher.stop()

    async def _run(self) -> None:
        async for entry in self._watcher:
            if entry is None:
                self.synced.set()
                continue
            try:
                self._apply(entry)
            except StoreError as exc:
                log.warning("account %s not mirrored: %s", entry.key, exc)
            except Exception:
                log.exception("account entry %s", entry.key)
            self.applied_one.set()

    async def wait_until(self, done: Callable[[], bool], timeout: float) -> None:
        """Until `done()` holds, looked at after each entry the watch applied (bounded; for tests
        and `labchat-admin`'s callers, which change the bucket and then read a relay's copy)."""

        async def until() -> None:
            while not done():
                self.applied_one.clear()
                await self.applied_one.wait()

        await asyncio.wait_for(until(), timeout)

    def _apply(self, entry: KeyValue.Entry) -> None:
        try:
            key = bytes.fromhex(entry.key).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return
        if entry.operation is not None or not entry.value:  # deleted or purged
            self.store.remove_account(key)
            return
        try:
            record = checked_account(entry.value)
        except CodecError as exc:
            log.warning("account entry %s skipped: %s", key, exc)
            return
        if m.name_key(record.name) != key:
            log.warning("account entry %s names %s: skipped", key, record.name)
            return
        self.store.mirror_account(
            record.name, record.salt, record.digest, (record.n, record.r, record.p), record.admin,
            record.created_ms,
        )

    def register(self, checks: list[PasswordCheck]) -> None:
        """Claim each new account in the bucket; the login goes on (or fails) once it is known."""
        for check in checks:
            task = asyncio.create_task(self._claim(check))
            self._claims.add(task)
            task.add_done_callback(self._claims.discard)

    async def _claim(self, check: PasswordCheck) -> None:
        record = record_of_check(check)
        created = False
        for _attempt in range(3):
            try:
                created = await self.accounts.create(record)
                break
            except TRANSIENT:
                await asyncio.sleep(0.5)  # a NATS node's death: the next try reaches another
            except Exception:  # whatever it was, the login is answered (refused), never left waiting
                log.exception("registration of %s", record.name)
                break
        existing = record if created else await self._read(record.name)
        if existing is not None:
            self._copy(existing)  # before the login completes (the watch brings it too; idempotent)
        matched: bool | None = None  # not created: was the password the existing account's?
        if not created and existing is not None:
            stored = (existing.salt, existing.digest, existing.n, existing.r, existing.p)
            against = PasswordCheck(check.session_id, check.login, stored, existing.n)
            matched = (await asyncio.to_thread(against.run)).ok
        self.relay.logins.registration_done(check, created, self.clock(), matched=matched)
        self.flush()

    def look_up(self, lookups: list[tuple[bytes, Login]]) -> None:
        """Read each login's name from the bucket, copy its account here if it has one, then let the
        login go on (`Logins.account_looked_up`): an account made a moment ago on another relay is
        not taken for a new name because the watch has not brought it yet (22.4)."""
        for session_id, login in lookups:
            task = asyncio.create_task(self._look_up(session_id, login))
            self._claims.add(task)
            task.add_done_callback(self._claims.discard)

    async def _look_up(self, session_id: bytes, login: Login) -> None:
        try:
            await self.read(login.user)
        except Exception:  # a bug, not the cluster: the login is still answered, never left waiting
            log.exception("account look-up of %s", login.user)
        self.relay.logins.account_looked_up(session_id, login, self.clock())
        self.flush()

    async def read(self, name: str) -> AccountValue | None:
        """`name`'s account from the bucket, copied here if this relay had no copy yet (see `_read`)."""
        found = await self._read(name)
        if found is not None and self.store.get_account(name) is None:
            self._copy(found)
        return found

    async def _read(self, name: str) -> AccountValue | None:
        """`name`'s account in the bucket, read now (not waiting for the watch); None when it has
        none, or when the cluster cannot say within `LOOKUP_TIMEOUT_S` (the login then goes on as
        with no account: a registration claims the name, and that fails cleanly if it is taken)."""
        try:
            found = await asyncio.wait_for(self.accounts.get(name), LOOKUP_TIMEOUT_S)
        except CodecError as exc:
            log.warning("account entry for %s skipped: %s", name, exc)
            return None
        except (TimeoutError, nats.errors.Error) as exc:  # slow, electing or gone: see above
            log.info("account %s not read from the cluster: %s", name, type(exc).__name__)
            return None
        if found is None or m.name_key(found[0].name) != m.name_key(name):
            return None
        return found[0]

    def _copy(self, account: AccountValue) -> None:
        scrypt = (account.n, account.r, account.p)
        self.store.mirror_account(
            account.name, account.salt, account.digest, scrypt, account.admin, account.created_ms
        )

