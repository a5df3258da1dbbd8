"""How many file frames may be in flight: a delay-based window for the bulk class (21.7), sans-I/O.

The congestion window (congestion.py) is loss-based: it grows until a queue somewhere overflows.
A file alone would fill the queue of the slowest switch on the path, and every chat line would wait
behind it. A fixed cap on file frames in flight (64) bounded that wait, but by a number of frames,
not by a time: 64 KB is 5 ms of queue at 100 Mbit/s (ten times a LAN's round trip) and, at
1 Gbit/s, too little to fill the path (56 MB/s of 121 in the model).

This window measures the queue instead, as LEDBAT does (RFC 6817): the **base delay** is the
smallest round trip seen lately (the path with empty queues), the **current delay** is the
smallest of the last few samples (one late sample is a busy event loop or a delayed ACK, not a
queue; a queue delays every sample), and their difference is the **queueing delay**. The window
grows while the queueing delay stays under a small target and shrinks, in proportion to how far
it is over, when it does not:

  * target = `target_fraction` x base delay, within [`target_min_s`, `target_max_s`]: what the
    file may add to a chat line's trip is a fraction of the trip itself, so "chat at most twice
    as slow during a transfer" holds on a fast path and a slow one alike;
  * start: from `initial_frames`, +1 frame per frame acknowledged (the window doubles per round
    trip) until the queueing delay first reaches half the target;
  * then, with off_target = (target - queueing delay) / target, per acknowledgement of n frames:
    below the target, window += gain x off_target x n / window (at most `gain` frames per round
    trip up, as LEDBAT); above it, window -= n x min(decrease x -off_target, 1/2) (a share of the
    window per round trip that grows with the excess, at most half: LEDBAT's linear decrease
    would take a hundred round trips to empty a queue built by a window of 256);
  * growth only while the window was the limit (as RFC 9002 7.8): a file held back by the loss
    window or a slow disk does not earn a window it never used;
  * always between `floor_frames` (a file always moves, whatever the samples say) and
    `ceiling_frames`.

Loss is not a signal here: the congestion window already halves on it, and random loss is not a
queue. Chat frames are never counted or held back by this window. Time is a parameter: nothing
here reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BulkWindowConfig:
    """Knobs of the bulk window. The defaults suit a LAN: round trips of 0.1-5 ms."""

    #: Fewest file frames in flight, whatever the delay says: a file always moves.
    floor_frames: int = 8
    #: Most file frames in flight: 256 KB, a 1 Gbit/s path's round trip twice over.
    ceiling_frames: int = 256
    #: Window before the first sample.
    initial_frames: int = 16
    #: Queueing delay the file may add, as a fraction of the base delay...
    target_fraction: float = 0.2
    #: ...or of the path's jitter (the smoothed height of samples above the current delay)...
    jitter_fraction: float = 2.0
    #: ...but never less than this (a loopback's round trip is tens of microseconds, its jitter is not)...
    target_min_s: float = 0.0001
    #: ...nor more (a slow path's round trip need not be matched by its queue).
    target_max_s: float = 0.005
    #: Frames per round trip the window grows by at most, once started (RFC 6817's GAIN).
    gain: float = 1.0
    #: Fraction of the window given up per round trip for each target's worth of queue above the
    #: target (at most half per round trip): prompt when far over, gentle near it.
    decrease: float = 0.25
    #: The current delay is the smallest of this many latest samples (RFC 6817's CURRENT_FILTER).
    filter_samples: int = 4
    #: The base delay is the smallest sample over `base_buckets` intervals of this long: a path
    #: whose delay rose for good (a new route, a busier host) is relearnt within a few seconds.
    base_bucket_s: float = 1.0
    #: See `base_bucket_s` (RFC 6817's BASE_HISTORY, in seconds rather than minutes: a LAN).
    base_buckets: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.floor_frames <= self.initial_frames <= self.ceiling_frames:
            raise ValueError("need 1 <= floor_frames <= initial_frames <= ceiling_frames")
        if self.filter_samples < 1 or self.base_buckets < 1 or self.base_bucket_s <= 0:
            raise ValueError("filter_samples, base_buckets and base_bucket_s must be positive")
        if not 0 < self.target_min_s <= self.target_max_s or min(self.target_fraction, self.gain,
                                                                 self.decrease, self.jitter_fraction) <= 0:
            raise ValueError("targets, gain and decrease must be positive, target_min_s <= target_max_s")


class BulkWindow:
    """The delay-based limit on file frames in flight. See the module docstring for the rules.

    Fed by the reliable link: `on_rtt_sample` with each round trip it can trust (a frame sent once,
    acknowledged at once), `on_acked` with the number of file frames newly acknowledged. Asked:
    `limit`, the file frames that may be in flight now.
    """

    __slots__ = ("_base", "_bases", "_current", "_recent", "config", "jitter", "starting", "window")

    def __init__(self, config: BulkWindowConfig | None = None) -> None:
        self.config = config or BulkWindowConfig()
        #: The window in frames; a float so that growth of less than a frame per ACK adds up.
        self.window = float(self.config.initial_frames)
        #: Still in the start (doubling per round trip) phase.
        self.starting = True
        #: Smoothed height of the samples above the current delay: the path's own jitter (a busy
        #: event loop, a delayed ACK), which every chat line meets with or without a file.
        self.jitter = 0.0
        self._recent: deque[float] = deque(maxlen=self.config.filter_samples)
        #: (bucket number, smallest sample in it), oldest first.
        self._bases: deque[tuple[int, float]] = deque(maxlen=self.config.base_buckets)
        # The two delays, kept up to date by each sample: this runs for every ACK of a file.
        self._base: float | None = None
        self._current = 0.0

    @property
    def limit(self) -> int:
        """File frames that may be in flight now."""
        return int(self.window)

    @property
    def base_delay(self) -> float | None:
        """The path's round trip without queues: the smallest recent sample (None before one)."""
        return self._base

    @property
    def current_delay(self) -> float | None:
        """The round trip now, filtered: the smallest of the last few samples (None before one)."""
        return self._current if self._recent else None

    @property
    def target(self) -> float:
        """Queueing delay the file may add: a fraction of the base delay or the path's own jitter,
        whichever is larger, within bounds."""
        cfg = self.config
        base = self._base or 0.0
        wanted = max(cfg.target_fraction * base, cfg.jitter_fraction * self.jitter, cfg.target_min_s)
        return min(wanted, cfg.target_max_s)

    @property
    def queueing_delay(self) -> float | None:
        """Current minus base delay: how long the path's queues hold a packet now."""
        return None if self._base is None else self._current - self._base

    def on_rtt_sample(self, rtt: float, now: float) -> None:
        """One round trip measured at `now`: a frame sent once and acknowledged without delay."""
        rtt = max(rtt, 0.0)
        self._recent.append(rtt)
        self._current = current = min(self._recent)
        self.jitter += (rtt - current - self.jitter) / 16
        bucket = int(now // self.config.base_bucket_s)
        bases = self._bases
        if bases and bases[-1][0] == bucket:
            if rtt < bases[-1][1]:
                bases[-1] = (bucket, rtt)
                if self._base is None or rtt < self._base:
                    self._base = rtt
        else:
            while bases and bases[0][0] <= bucket - self.config.base_buckets:
                bases.popleft()  # older than the history: forgotten even after a long pause
            bases.append((bucket, rtt))
            self._base = min(b for _, b in bases)

    def on_acked(self, frames: int, limited: bool) -> None:
        """`frames` file frames were newly acknowledged; `limited`: this window held frames back
        since the last acknowledgement (only then may it grow)."""
        base = self._base
        if frames <= 0 or base is None:
            return
        queueing = self._current - base
        cfg = self.config
        target = min(max(cfg.target_fraction * base, cfg.jitter_fraction * self.jitter, cfg.target_min_s),
                     cfg.target_max_s)  # `target`, inlined
        window = self.window
        if self.starting and queueing >= target / 2:
            self.starting = False
        if self.starting:
            if limited:
                window += frames
        else:
            off_target = (target - queueing) / target
            if off_target < 0:
                window -= frames * min(cfg.decrease * -off_target, 0.5)
            elif limited:
                window += cfg.gain * off_target * frames / window
        self.window = min(max(window, float(cfg.floor_frames)), float(cfg.ceiling_frames))

