"""Latency histogram (mergeable across processes) and percentile arithmetic.

Latencies are kept in log-spaced buckets 2 % wide from 1 µs to ~100 s instead of as raw samples: a
worker may see millions of deliveries per step, and a histogram of ~1000 integers crosses a process
pipe in microseconds. A reported percentile is the upper edge of its bucket, so it errs high by < 2 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

_BASE = 1.02
_LOG_BASE = math.log(_BASE)
_MIN_S = 1e-6
_LOG_MIN = math.log(_MIN_S)
_INV_LOG_BASE = 1 / _LOG_BASE
#: Buckets from 1 µs up to _MIN_S * _BASE**_BUCKETS ≈ 140 s; anything above lands in the last one.
_BUCKETS = 1200


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * _BUCKETS)
    n: int = 0
    total: float = 0.0
    max: float = 0.0

    def add(self, seconds: float) -> None:
        if seconds < _MIN_S:
            index = 0
        else:  # once per delivery measured: one log, one multiplication
            index = min(_BUCKETS - 1, int((math.log(seconds) - _LOG_MIN) * _INV_LOG_BASE) + 1)
        self.counts[index] += 1
        self.n += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: Histogram) -> None:
        for i, c in enumerate(other.counts):
            if c:
                self.counts[i] += c
        self.n += other.n
        self.total += other.total
        self.max = max(self.max, other.max)

    def percentile(self, p: float) -> float | None:
        """The p-th percentile (0-100) in seconds, or None without samples."""
        if self.n == 0:
            return None
        rank = max(1, math.ceil(self.n * p / 100.0))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                edge = _MIN_S * _BASE**i
                return min(edge, self.max)
        return self.max

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def to_state(self) -> tuple[dict[int, int], int, float, float]:
        """A compact picklable form (only non-empty buckets)."""
        return ({i: c for i, c in enumerate(self.counts) if c}, self.n, self.total, self.max)

    @classmethod
    def from_state(cls, state: tuple[dict[int, int], int, float, float]) -> Histogram:
        sparse, n, total, mx = state
        h = cls()
        for i, c in sparse.items():
            h.counts[i] = c
        h.n, h.total, h.max = n, total, mx
        return h

    def summary_ms(self) -> dict[str, float | None]:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000, 3)

        return {
            "p50": ms(self.percentile(50)),
            "p95": ms(self.percentile(95)),
            "p99": ms(self.percentile(99)),
            "max": ms(self.max if self.n else None),
            "mean": ms(self.mean),
        }
