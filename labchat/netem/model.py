"""The impairment model: what happens to one datagram, decided without touching a clock or a socket.

Keeping the decision pure (a seeded `random.Random`, the settings, and the time `now` the caller
read) means every fate can be unit-tested and replayed: the same seed and the same sequence of
datagrams always give the same drops, copies and delays, whatever the event loop is doing.

Each call to `Impairment.decide` draws exactly five numbers from the generator, whatever the
outcome. That keeps the random stream aligned between runs with different settings, so with one seed
raising `loss` from 0.1 to 0.2 drops every datagram the 0.1 run dropped, plus some more: students
can compare runs datagram by datagram.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    """The two directions through the proxy.

    A `StrEnum`, so `Direction.UP == "up"` and it prints, formats and serialises as plain "up".
    """

    #: Client → server.
    UP = "up"
    #: Server → client.
    DOWN = "down"


#: How long a reordered datagram is held back by default, on top of its normal delay. Long enough
#: for the next datagram of a chatty exchange (acks, retransmissions) to overtake it on a LAN.
DEFAULT_REORDER_DELAY = 0.05


@dataclass(frozen=True, slots=True)
class ImpairmentConfig:
    """Settings for one direction. Probabilities are in [0, 1]; times are in seconds.

    `delay` is added to every copy; `jitter` moves each copy by a uniform amount in [-jitter,
    +jitter] around it (never earlier than arrival), so jitter alone can reorder traffic, as on a
    real network. A reordered datagram is held back a further `reorder_delay`.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    reorder_delay: float = DEFAULT_REORDER_DELAY

    def __post_init__(self) -> None:
        # Validate here so a bad setting fails at construction, not on the first datagram.
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability between 0 and 1, not {value!r}")
        for name in ("delay", "jitter", "reorder_delay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")

    @property
    def is_perfect(self) -> bool:
        """True when this direction forwards every datagram once, at once, in order."""
        return self.loss == self.duplicate == self.reorder == self.delay == self.jitter == 0.0


#: A direction that changes nothing.
PERFECT_PIPE = ImpairmentConfig()


@dataclass(frozen=True, slots=True)
class Fate:
    """What happens to one datagram: the times (same clock as `now`) its copies are delivered.

    An empty `deliveries` means it was dropped; two entries mean it was duplicated.
    """

    deliveries: tuple[float, ...]
    duplicated: bool = False
    reordered: bool = False

    @property
    def dropped(self) -> bool:
        """True when no copy is delivered."""
        return not self.deliveries

    def label(self) -> str:
        """A short word for logs and captures: dropped, forwarded, duplicated, reordered or both."""
        if self.dropped:
            return "dropped"
        words = [w for w, on in (("duplicated", self.duplicated), ("reordered", self.reordered)) if on]
        return "+".join(words) or "forwarded"


class Impairment:
    """Decides datagram fates for one direction from a config and a seeded generator."""

    def __init__(self, config: ImpairmentConfig, rng: random.Random) -> None:
        self.config = config
        self._rng = rng

    def decide(self, now: float) -> Fate:
        """The fate of a datagram that arrived at `now`; deliveries are sorted and >= `now`."""
        cfg = self.config
        # Always five draws, in this order, so settings never shift the stream (see module doc).
        u_loss, u_dup, u_reorder, jitter_a, jitter_b = (self._rng.random() for _ in range(5))
        if u_loss < cfg.loss:
            return Fate(())
        duplicated = u_dup < cfg.duplicate
        reordered = u_reorder < cfg.reorder
        hold = cfg.reorder_delay if reordered else 0.0
        times = [self._arrival(now, jitter_a, hold)]
        if duplicated:
            times.append(self._arrival(now, jitter_b, hold))
        return Fate(tuple(sorted(times)), duplicated=duplicated, reordered=reordered)

    def _arrival(self, now: float, draw: float, hold: float) -> float:
        """One copy's delivery time: delay ± jitter (clamped at zero), plus reorder hold-back."""
        offset = self.config.delay + (2.0 * draw - 1.0) * self.config.jitter
        return now + max(0.0, offset) + hold


def direction_rng(seed: int, direction: Direction) -> random.Random:
    """The generator for one direction of a proxy run.

    Each direction gets its own stream so that a direction's fates depend only on its own
    sequence of datagrams, not on how replies happen to interleave with requests in a given run.
    """
    return random.Random(f"labchat-netem:{seed}:{direction}")
