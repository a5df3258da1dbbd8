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


def test_random_loss_costs_round_trips_not_retransmission_timeouts() -> None:
    """At 10 % random loss (not congestion) the window stays small; a lost tail must be found by a
    tail loss probe and the time threshold, not the 100 ms timer (before: 1.5 MB/s, chat p99 295 ms)."""
    lossy = run(with_file=True, seconds=1.0, rate_bps=100e6, loss=0.10)
    assert lossy["chat_lines"] >= 95
    assert lossy["file_mb_s"] > 2.2
    assert lossy["p99_ms"] < 100
