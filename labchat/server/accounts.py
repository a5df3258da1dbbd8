"""Login policy that is not the store's business: password checks as work items, the login queue,
the throttle that counts guesses when they arrive, and the bound on registrations.

scrypt is deliberately slow (tens of milliseconds). Run on the event loop it would freeze every chat on
the server for each login, so the relay hands a `PasswordCheck` to the transport, which runs it in a
thread (hashlib releases the GIL while it hashes) and gives it back.

`LoginGate` decides when a check may run. Two things go wrong without it, both measured:

- A throttle that records a failure only once scrypt has said "wrong" can be raced: 150 guesses sent
  at once were all admitted before the first one failed. Here every check of an existing account is
  charged to a budget of *failures* per name and per source address when it is admitted, as if it
  were going to fail; a check that the budgets cannot cover waits, and is refused if the wait would
  be long. No number of simultaneous guesses gets more checks than the budgets allow.
- A class logging in at once waited inside a thread pool, silently, past the client's deadline. Here
  the checks wait in one visible queue: the relay tells each waiting login its place
  (LOGIN_QUEUED), and only `parallel_checks` run at a time, as many as there are workers.

Everything here is sans-I/O: time is a parameter, so tests play minutes of guessing in microseconds.
docs/protocol.md section 17 is the specification.
"""

from __future__ import annotations

import hmac
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field

from ..protocol.messages import Login, name_key
from .store import SCRYPT_P, SCRYPT_R, hash_password

#: How many names and addresses the gate remembers (oldest idle ones forgotten first).
MAX_TRACKED = 10_000
#: A password check is assumed to take this long until one has been timed.
INITIAL_CHECK_S = 0.05


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """The numbers of docs/protocol.md 17.2-17.5. Every field is a documented default."""

    #: Failed checks a name may cost at once...
    name_burst: int = 5
    #: ...and then one more every this many seconds (6 a minute).
    name_refill_s: float = 10.0
    #: Failed checks one source address may cost at once (guessing many names)...
    addr_burst: int = 10
    #: ...and then one more every this many seconds.
    addr_refill_s: float = 6.0
    #: A check whose budgets would make it wait longer than this is refused at once instead.
    max_wait_s: float = 30.0
    #: Password checks run at once: the transport's worker threads.
    parallel_checks: int = 2
    #: Logins waiting for a check; beyond it, SERVER_BUSY.
    max_queued: int = 4096
    #: An address that logged in as a name is exempt from that name's budget for this long, so that
    #: guessing at alice from elsewhere does not keep alice out from her own machine.
    known_address_s: float = 24 * 3600.0
    #: New accounts per source address per hour (0: no limit).
    registrations_per_hour: int = 60


@dataclass(eq=False, slots=True)
class PasswordCheck:
    """One login's scrypt work. `record` is None for a name with no account (registration)."""

    session_id: bytes
    login: Login
    record: tuple[bytes, bytes, int, int, int] | None
    scrypt_n: int
    ok: bool = False
    new_hash: tuple[bytes, bytes] | None = None
    #: The source address the login came from (the budgets it is charged to are kept by the gate).
    host: str = ""
    #: Budget keys charged while this check waits or runs.
    charged: tuple[str, ...] = ()
    started_at: float | None = None
    #: What the client was last told of its place in the queue, and when.
    told_position: int = -1
    told_at: float = field(default=-math.inf)

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
class _Budget:
    """Failures a name or an address may still cost: a token bucket, plus the checks charged to it
    that are running or waiting (each may yet fail)."""

    burst: int
    refill_s: float
    tokens: float
    at: float
    running: int = 0
    waiting: int = 0

    def refresh(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(float(self.burst), self.tokens + (now - self.at) / self.refill_s)
            self.at = now

    def covers_one_more(self) -> bool:
        """Could one more check run now even if it and every running one failed?"""
        # The tolerance keeps float rounding of the refill from leaving a check that `ready_at`
        # says may start as not quite covered: its deadline would have come and never clear.
        return self.tokens + 1e-6 >= self.running + 1

    def ready_at(self, extra: int = 0) -> float:
        """When the budget will cover its running checks, `extra` others and one more."""
        missing = self.running + extra + 1 - self.tokens
        return self.at + max(0.0, missing) * self.refill_s

    @property
    def idle(self) -> bool:
        return self.running == 0 and self.waiting == 0 and self.tokens >= self.burst


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a check was not admitted: `reason` is "name", "address" or "busy"; wait in seconds."""

    reason: str
    wait_s: float


class LoginGate:
    """The login queue and the throttle (see the module docstring).

    The relay calls `admit` for each LOGIN that needs scrypt, `start_ready` to take the checks that
    may run now, `finished` when one has run, and `cancel` when a waiting session goes away.
    """

    def __init__(self, policy: LoginPolicy | None = None) -> None:
        self.policy = policy or LoginPolicy()
        self.waiting: list[PasswordCheck] = []
        self.running = 0
        self.started = 0  #: checks started in total (tests and the log)
        self.mean_check_s = INITIAL_CHECK_S
        self._budgets: OrderedDict[str, _Budget] = OrderedDict()
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()

    # ------------------------------------------------------------ admission

    def admit(self, check: PasswordCheck, host: str, now: float) -> Refusal | None:
        """Queue `check` (None) or refuse it. Only checks of existing accounts are charged."""
        pol = self.policy
        if len(self.waiting) >= pol.max_queued:
            return Refusal("busy", max(1.0, self.eta_s(len(self.waiting))))
        check.host = host
        keys: list[str] = []
        if check.record is not None:
            name = name_key(check.login.user)
            if not self.is_known(name, host, now):
                keys.append(f"name:{name}")
            keys.append(f"addr:{host}")
        for key in keys:
            budget = self._budget(key, now)
            wait = budget.ready_at(budget.waiting) - now
            if wait > pol.max_wait_s:
                return Refusal("name" if key.startswith("name:") else "address", wait)
        for key in keys:
            self._budgets[key].waiting += 1
        check.charged = tuple(keys)
        self.waiting.append(check)
        return None

    def start_ready(self, now: float) -> list[PasswordCheck]:
        """The waiting checks that may run now, in arrival order; they count as running."""
        free = self.policy.parallel_checks - self.running
        if free <= 0 or not self.waiting:
            return []
        started: list[PasswordCheck] = []
        still: list[PasswordCheck] = []
        for check in self.waiting:
            if len(started) < free and self._may_start(check, now):
                for key in check.charged:
                    budget = self._budgets[key]
                    budget.waiting -= 1
                    budget.running += 1
                check.started_at = now
                started.append(check)
            else:
                still.append(check)
        self.waiting = still
        self.running += len(started)
        self.started += len(started)
        return started

    def _may_start(self, check: PasswordCheck, now: float) -> bool:
        for key in check.charged:
            budget = self._budgets[key]
            budget.refresh(now)
            if not budget.covers_one_more():
                return False
        return True

    def finished(self, check: PasswordCheck, now: float) -> None:
        """A started check has run: a failure costs each budget it was charged to one unit."""
        self.running = max(0, self.running - 1)
        if check.started_at is not None:
            self.mean_check_s += 0.2 * (max(0.0, now - check.started_at) - self.mean_check_s)
        for key in check.charged:
            budget = self._budgets.get(key)
            if budget is None:
                continue
            budget.running = max(0, budget.running - 1)
            if check.record is not None and not check.ok:
                budget.refresh(now)
                budget.tokens = max(0.0, budget.tokens - 1.0)
        check.charged = ()

    def succeeded(self, user: str, host: str, now: float) -> None:
        """A login as `user` from `host` worked (password, registration or ticket; the relay says
        so once the session is in): its name's budget is whole again, and this address is known
        for the name (exempt from the name's budget)."""
        name = name_key(user)
        budget = self._budgets.get(f"name:{name}")
        if budget is not None:
            budget.tokens = float(budget.burst)
            budget.at = now
        self._known.pop((name, host), None)
        self._known[(name, host)] = now + self.policy.known_address_s
        while len(self._known) > MAX_TRACKED:
            self._known.popitem(last=False)

    def cancel(self, session_id: bytes) -> None:
        """A session waiting for its check went away: give back what its check was charged."""
        keep = []
        for check in self.waiting:
            if check.session_id == session_id:
                for key in check.charged:
                    if (budget := self._budgets.get(key)) is not None:
                        budget.waiting = max(0, budget.waiting - 1)
                check.charged = ()
            else:
                keep.append(check)
        self.waiting = keep

    # ------------------------------------------------------------ queries

    def is_known(self, name: str, host: str, now: float) -> bool:
        expires = self._known.get((name, host))
        return expires is not None and expires > now

    def position(self, check: PasswordCheck) -> int:
        return self.waiting.index(check)

    def eta_s(self, position: int) -> float:
        """When the check at `position` should start, if nothing ahead of it is blocked."""
        per_round = max(1, self.policy.parallel_checks)
        return (position // per_round + 1) * self.mean_check_s

    def next_timer(self) -> float | None:
        """When a budget blocking a waiting check will have refilled enough (None: no such wait)."""
        if self.running >= self.policy.parallel_checks:
            return None  # the next `finished` will look again
        deadline: float | None = None
        for check in self.waiting:
            ready = max(
                (self._budgets[k].ready_at() for k in check.charged if k in self._budgets), default=None
            )
            if ready is not None and (deadline is None or ready < deadline):
                deadline = ready
        return deadline

    def _budget(self, key: str, now: float) -> _Budget:
        budget = self._budgets.get(key)
        if budget is None:
            pol = self.policy
            burst, refill = (
                (pol.name_burst, pol.name_refill_s) if key.startswith("name:")
                else (pol.addr_burst, pol.addr_refill_s)
            )  # fmt: skip
            budget = _Budget(burst, refill, float(burst), now)
            self._budgets[key] = budget
            self._evict()
        else:
            self._budgets.move_to_end(key)
            budget.refresh(now)
        return budget

    def _evict(self) -> None:
        """Forget the oldest budgets that are whole and unused; one in use is never forgotten."""
        if len(self._budgets) <= MAX_TRACKED:
            return
        for key in list(self._budgets):
            if len(self._budgets) <= MAX_TRACKED:
                break
            if self._budgets[key].idle:
                del self._budgets[key]


class RegistrationLimit:
    """New accounts per source address per hour: a token bucket of `per_hour`, refilled evenly."""

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, host: str, now: float) -> float:
        """Charge one registration to `host`: 0 if allowed, else the seconds until the next one is."""
        if self.per_hour <= 0:
            return 0.0
        refill_s = 3600.0 / self.per_hour
        tokens, at = self._buckets.pop(host, (float(self.per_hour), now))
        tokens = min(float(self.per_hour), tokens + max(0.0, now - at) / refill_s)
        if tokens < 1.0:
            self._buckets[host] = (tokens, now)
            return (1.0 - tokens) * refill_s
        self._buckets[host] = (tokens - 1.0, now)
        while len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)
        return 0.0
