"""The chat-during-a-transfer model (simulated time, a second of CPU): the 21.7 promise in figures."""

from __future__ import annotations

from labchat.bench.chat_transfer import run


def test_a_file_at_most_doubles_chat_p99_on_a_gigabit_path_and_still_moves() -> None:
    quiet = run(with_file=False, seconds=1.0, rate_bps=1e9)
    busy = run(with_file=True, seconds=1.0, rate_bps=1e9)
    fifo = run(with_file=True, bulk=False, seconds=1.0, rate_bps=1e9)
    assert busy["chat_lines"] >= 95 and quiet["chat_lines"] >= 95
    assert busy["p99_ms"] <= 2 * quiet["p99_ms"]
    assert busy["file_mb_s"] > 20  # the file is not starved
    assert fifo["p99_ms"] > 5 * busy["p99_ms"]  # without the bulk queue the file stands in front


def test_a_file_at_most_doubles_chat_p99_on_a_100_mbit_path() -> None:
    """The fixed cap of 64 frames in flight held 5 ms of queue in front of chat at 100 Mbit/s (p99
    0.5 -> 4.8 ms); the delay-based bulk window keeps the queue to a fraction of the round trip,
    and the file still fills the path."""
    quiet = run(with_file=False, seconds=1.0, rate_bps=100e6)
    busy = run(with_file=True, seconds=1.0, rate_bps=100e6)
    fixed = run(with_file=True, seconds=1.0, rate_bps=100e6, fixed_cap=True)
    assert busy["chat_lines"] >= 95
    assert busy["p99_ms"] <= 2 * quiet["p99_ms"]
    assert fixed["p99_ms"] > 4 * quiet["p99_ms"]  # the reference: what the bulk window fixed
    assert busy["file_mb_s"] > 0.95 * fixed["file_mb_s"]  # and no slower for it (12 MB/s: the line)


def test_the_bulk_window_recovers_gigabit_goodput_that_the_fixed_cap_left() -> None:
    busy = run(with_file=True, seconds=1.0, rate_bps=1e9)
    fixed = run(with_file=True, seconds=1.0, rate_bps=1e9, fixed_cap=True)
    assert fixed["file_mb_s"] < 70  # 64 KB per round trip: 56 MB/s
    assert busy["file_mb_s"] > 100  # the path's line rate is 121 MB/s


def test_random_loss_costs_round_trips_not_retransmission_timeouts() -> None:
    """At 10 % random loss (not congestion) the window stays small; a lost tail must be found by a
    tail loss probe and the time threshold, not the 100 ms timer (before: 1.5 MB/s, chat p99 295 ms)."""
    lossy = run(with_file=True, seconds=1.0, rate_bps=100e6, loss=0.10)
    assert lossy["chat_lines"] >= 95
    assert lossy["file_mb_s"] > 2.2
    assert lossy["p99_ms"] < 100
