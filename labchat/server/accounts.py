"""Login policy that is not the store's business: password checks as work items, and login throttling.

scrypt is deliberately slow (tens of milliseconds). Run on the event loop it would freeze every chat on
the server for each login, so the relay hands a `PasswordCheck` to the transport, which runs it in a
thread (hashlib releases the GIL while it hashes) and gives it back.

Failed logins are throttled per name and per source address with a delay that doubles on each failure
(1 s, 2 s, 4 s ... up to `MAX_DELAY_S`), as OpenSSH and most login systems do: guessing a password over
the LAN becomes hopeless, while a user who mistyped once waits a second.
"""

from __future__ import annotations

import hmac
import os
from collections import OrderedDict
from dataclasses import dataclass

from ..protocol.messages import Login, name_key
from .store import SCRYPT_P, SCRYPT_R, hash_password

#: Failures allowed before any delay.
FREE_FAILURES = 3
#: Longest delay between attempts after repeated failures.
MAX_DELAY_S = 60.0
#: How many names and addresses the throttle remembers (oldest forgotten first).
MAX_TRACKED = 10_000


@dataclass(slots=True)
class PasswordCheck:
    """One login's scrypt work. `record` is None for a name with no account (registration)."""

    session_id: bytes
    login: Login
    record: tuple[bytes, bytes, int, int, int] | None
    scrypt_n: int
    ok: bool = False
    new_hash: tuple[bytes, bytes] | None = None

    def run(self) -> PasswordCheck:
        """The expensive part; safe to call from a worker thread (touches nothing shared)."""
        if self.record is None:
            salt = os.urandom(16)
            self.new_hash = (
                salt,
                hash_password(self.login.password, salt, self.scrypt_n, SCRYPT_R, SCRYPT_P),
            )
            self.ok = True
        else:
            salt, digest, n, r, p = self.record
            self.ok = hmac.compare_digest(hash_password(self.login.password, salt, n, r, p), digest)
        return self


@dataclass(slots=True)
class _Failures:
    count: int = 0
    until: float = 0.0


class LoginThrottle:
    """Growing delays after failed logins, per account name and per source address."""

    def __init__(self) -> None:
        self._by_key: OrderedDict[str, _Failures] = OrderedDict()

    def delay(self, user: str, host: str, now: float) -> float:
        """Seconds the caller must still wait before another attempt (0: go ahead)."""
        wait = 0.0
        for key in (f"name:{name_key(user)}", f"addr:{host}"):
            entry = self._by_key.get(key)
            if entry is not None:
                wait = max(wait, entry.until - now)
        return wait

    def failed(self, user: str, host: str, now: float) -> None:
        for key in (f"name:{name_key(user)}", f"addr:{host}"):
            entry = self._by_key.pop(key, None) or _Failures()
            entry.count += 1
            if entry.count > FREE_FAILURES:
                entry.until = now + min(MAX_DELAY_S, 2.0 ** (entry.count - FREE_FAILURES - 1))
            self._by_key[key] = entry
            while len(self._by_key) > MAX_TRACKED:
                self._by_key.popitem(last=False)

    def succeeded(self, user: str, host: str) -> None:
        self._by_key.pop(f"name:{name_key(user)}", None)
