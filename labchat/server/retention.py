"""History retention: delete room messages older than `--history-days` or beyond `--history-max-mb`.

Why in the background and in batches: a year of a busy room is millions of rows, and one DELETE of
them would hold the event loop (and the database's write lock) for seconds. `HistoryPruner.step`
deletes at most `batch_rows` of the oldest messages, a few milliseconds' work (docs/performance.md),
and `prune_regularly` yields to the event loop between batches, so chat goes on while it works.

Pruning never changes numbering: the store keeps each room's last `seq` apart from the messages
(store.py), and the relay's in-memory ring forgets what the store forgot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..i18n import _
from .room import Room
from .store import Store, StoreError

log = logging.getLogger(__name__)

DAY_S = 86_400.0
MIB = 1024 * 1024
#: Messages deleted per batch: about 5 ms of work on a laptop SSD, so the room never notices.
PRUNE_BATCH_ROWS = 500
#: How often the limits are checked: the size cap can be passed by at most this long's messages.
PRUNE_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How much history the server keeps. None means no limit of that kind."""

    #: Messages older than this are deleted (`--history-days`, default 365 days).
    max_age_s: float | None = 365 * DAY_S
    #: While the database uses more than this, the oldest messages are deleted (`--history-max-mb`).
    max_bytes: int | None = 1024 * MIB
    #: Messages deleted per step.
    batch_rows: int = PRUNE_BATCH_ROWS
    #: Seconds between two rounds of pruning.
    interval_s: float = PRUNE_INTERVAL_S


class HistoryPruner:
    """Applies a `RetentionPolicy` to a store, one batch per `step`, keeping the rooms' rings in step."""

    def __init__(self, store: Store, rooms: Mapping[str, Room], policy: RetentionPolicy) -> None:
        self.store = store
        self.rooms = rooms
        self.policy = policy
        #: Messages deleted since start, for the log and the bench.
        self.deleted = 0

    def step(self, now: float) -> int:
        """Delete one batch of what the policy no longer allows; how many messages (0: all within).

        Raises:
            StoreError: the database cannot be written.
        """
        policy = self.policy
        before_ms = None if policy.max_age_s is None else int((now - policy.max_age_s) * 1000)
        batch = self.store.prune_batch(
            before_ms=before_ms, max_bytes=policy.max_bytes, batch=policy.batch_rows
        )
        for name, seq in batch.through_seq.items():
            room = self.rooms.get(name)
            if room is not None:
                room.forget_through(seq)
        self.deleted += batch.deleted
        return batch.deleted

    def run_once(self, now: float) -> int:
        """Every batch until the history is within the policy (tests, tools); the count deleted."""
        total = 0
        while (deleted := self.step(now)) > 0:
            total += deleted
        return total


async def prune_regularly(
    pruner: HistoryPruner, clock: Callable[[], float], pruned: asyncio.Event | None = None
) -> None:
    """Every `interval_s` (and once at start): prune the history in batches (`prune_in_rounds`)."""
    interval = pruner.policy.interval_s

    def failed(exc: BaseException) -> None:
        log.warning(_("%s; retrying every %g s"), exc, interval)

    def done(total: int) -> None:
        log.info(_("history: deleted %d old message(s) (retention limits)"), total)

    await prune_in_rounds(pruner.step, clock, interval, (StoreError,), failed, done, pruned)


async def prune_in_rounds(
    step: Callable[[float], int],
    clock: Callable[[], float],
    interval_s: float,
    errors: tuple[type[Exception], ...],
    failed: Callable[[BaseException], None],
    done: Callable[[int], None],
    pruned: asyncio.Event | None = None,
) -> None:
    """Every `interval_s` (and once at start): `step` in batches until it deletes nothing, yielding
    to the loop between them (the history's and the files' pruners both run so).

    A store that cannot be written (`errors`) is reported once per failure streak (`failed`) and
    retried next round; chat goes on meanwhile. `done` hears a round's total when it deleted any;
    `pruned` is set after each round, so a test can wait for one.
    """
    failing = False
    while True:
        total = 0
        try:
            while (deleted := step(clock())) > 0:
                total += deleted
                await asyncio.sleep(0)  # let datagrams in between two batches
        except errors as exc:
            if not failing:
                failed(exc)
            failing = True
        else:
            failing = False
            if total:
                done(total)
        if pruned is not None:
            pruned.set()
        await asyncio.sleep(interval_s)
