"""The delay-based bulk window (bulk_window.py, docs/protocol.md 21.7), driven by literal round trips
and a fake clock: it grows while the round trip stays near its minimum, shrinks when a queue builds,
stays between its floor and ceiling, and does not read jitter as a queue."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labchat.protocol.bulk_window import BulkWindow, BulkWindowConfig

BASE = 0.001  # a 1 ms round trip: target 0.2 ms (the fraction), not the 0.1 ms minimum


def _round_trip(bw: BulkWindow, rtt: float, now: float, *, limited: bool = True) -> None:
    """One round trip of a window-limited file: a sample and an ACK per eighth of the window."""
    acks = 8
    per_ack = max(1, bw.limit // acks)
    for i in range(acks):
        bw.on_rtt_sample(rtt, now + i * rtt / acks)
        bw.on_acked(per_ack, limited)


def test_no_sample_no_change() -> None:
    bw = BulkWindow()
    bw.on_acked(10, True)
    assert bw.limit == BulkWindowConfig().initial_frames and bw.queueing_delay is None


def test_grows_on_a_flat_round_trip_up_to_the_ceiling() -> None:
    bw = BulkWindow()
    now = 0.0
    sizes = []
    for _ in range(400):
        _round_trip(bw, BASE, now)
        now += BASE
        sizes.append(bw.limit)
    assert sizes[5] >= 2 * BulkWindowConfig().initial_frames  # the start doubles per round trip
    assert sizes == sorted(sizes)
    assert bw.limit == BulkWindowConfig().ceiling_frames


def test_does_not_grow_while_something_else_is_the_limit() -> None:
    bw = BulkWindow()
    for i in range(100):
        _round_trip(bw, BASE, i * BASE, limited=False)
    assert bw.limit == BulkWindowConfig().initial_frames


def test_a_queue_above_the_target_shrinks_it_to_the_floor_and_no_further() -> None:
    bw = BulkWindow()
    now = 0.0
    for _ in range(50):
        _round_trip(bw, BASE, now)
        now += BASE
    grown = bw.limit
    assert grown > 32
    shrinking = []
    for _ in range(200):
        _round_trip(bw, BASE * 3, now)  # 2 ms of queue against a 0.2 ms target
        now += BASE * 3
        shrinking.append(bw.limit)
    assert shrinking[0] < grown and shrinking == sorted(shrinking, reverse=True)
    assert shrinking[3] <= grown // 2  # at most halved per round trip, but promptly
    assert bw.limit == BulkWindowConfig().floor_frames


def test_it_settles_where_the_queue_meets_the_target() -> None:
    """A model path: 20 frames fill the pipe; every frame beyond them waits 0.05 ms in the queue.
    The window settles near 20 + target / 0.05 ms = 24 frames, not at the floor or the ceiling."""
    bw = BulkWindow()
    now = 0.0
    for _ in range(600):
        rtt = BASE + max(0, bw.limit - 20) * 0.00005
        _round_trip(bw, rtt, now)
        now += rtt
    assert 21 <= bw.limit <= 28
    assert bw.queueing_delay is not None and bw.queueing_delay <= 2 * bw.target


def test_a_rise_of_the_base_delay_is_relearnt_after_the_history() -> None:
    cfg = BulkWindowConfig()
    bw = BulkWindow(cfg)
    bw.on_rtt_sample(BASE, 0.0)
    bw.on_rtt_sample(3 * BASE, cfg.base_bucket_s * (cfg.base_buckets + 1))
    assert bw.base_delay == pytest.approx(3 * BASE)


def test_loopback_like_jitter_does_not_starve_the_file() -> None:
    """Every sample 0.2-5 ms at random (a busy event loop on both ends), no queue of ours: the
    minimum of recent samples sits well above the base, but within the jitter the target allows."""
    rng = random.Random(7)
    bw = BulkWindow()
    now = 0.0
    for _ in range(2000):
        rtt = rng.uniform(0.0002, 0.005)
        now += rtt / 8
        bw.on_rtt_sample(rtt, now)
        bw.on_acked(2, True)
    assert bw.limit >= BulkWindowConfig().initial_frames


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        BulkWindowConfig(floor_frames=0)
    with pytest.raises(ValueError):
        BulkWindowConfig(floor_frames=32, initial_frames=16)
    with pytest.raises(ValueError):
        BulkWindowConfig(target_min_s=0.01, target_max_s=0.001)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=-1.0, max_value=10.0, allow_nan=False),
                          st.integers(min_value=0, max_value=300), st.booleans()), max_size=300))
def test_whatever_the_samples_the_window_stays_between_floor_and_ceiling(
    events: list[tuple[float, int, bool]],
) -> None:
    cfg = BulkWindowConfig()
    bw = BulkWindow(cfg)
    now = 0.0
    for rtt, frames, limited in events:
        now += abs(rtt) / 4
        bw.on_rtt_sample(rtt, now)
        bw.on_acked(frames, limited)
        assert cfg.floor_frames <= bw.limit <= cfg.ceiling_frames
        assert bw.target <= cfg.target_max_s


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=0.0, max_value=0.00005),
                          st.floats(min_value=0.0, max_value=1.0)), min_size=1, max_size=400),
       st.integers(min_value=0, max_value=3))
def test_isolated_late_samples_never_shrink_it(samples: list[tuple[float, float]], phase: int) -> None:
    """At most one late sample (a paused event loop, of any length) among every four: the current
    delay is the minimum of four, so it never sees them, and the window never shrinks."""
    cfg = BulkWindowConfig()
    bw = BulkWindow(cfg)
    now = 0.0
    last = bw.window
    for i, (noise, spike) in enumerate(samples):
        rtt = BASE + (spike if i % cfg.filter_samples == phase else noise)
        now += rtt / 8
        bw.on_rtt_sample(rtt, now)
        bw.on_acked(2, True)
        assert bw.window >= last
        last = bw.window
