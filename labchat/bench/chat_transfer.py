"""Chat during a file transfer: the delivery delay of chat lines on one link, with and without a
file streaming beside them, in simulated time (`python -m labchat.bench.chat_transfer`).

Two real `ReliableLink`s (the sans-I/O link core with its congestion control) are joined by a model
of a LAN path: a bottleneck of `rate_bps` with a FIFO queue in front of it and `delay_s` of
propagation each way. A chat line leaves every `chat_interval_s`; the file, when there is one, keeps
the link's bulk queue full of 1000-byte FILE_DATA frames. The figures are the chat lines' delays from
`send` to delivery at the peer: what docs/protocol.md 21.7 promises is that a file does not stand in
front of them. `bulk=False` sends the file as ordinary frames, for comparison: the queue a chat line
would wait behind without the priority; `fixed_cap=True` bounds the file frames in flight by the
fixed 64-frame cap instead of the delay-based bulk window (the earlier behaviour).
"""

from __future__ import annotations

import heapq
import random
import sys
from typing import Any

from ..protocol.reliability import LinkConfig, ReliableLink

CHAT_KIND = 2
FILE_KIND = 52
CHUNK = b"f" * 1000


def run(*, with_file: bool, bulk: bool = True, seconds: float = 10.0, chat_interval_s: float = 0.01,
        rate_bps: float = 100e6, delay_s: float = 0.0005, loss: float = 0.0,
        seed: int = 16, fixed_cap: bool = False) -> dict[str, Any]:
    """Simulate `seconds`; return the chat delays (p50, p99, max, ms) and the file's goodput.

    `loss` drops that fraction of the packets in each direction at random (seeded: the same run gives
    the same figures), as labchat-netem does: loss that is not congestion, which a loss-based window
    reads as if it were. `fixed_cap` bounds the file frames in flight by the fixed 64-frame cap
    (the earlier behaviour) instead of the delay-based bulk window (docs/protocol.md 21.7).
    """
    rng = random.Random(seed)
    config = LinkConfig(bulk_window=None) if fixed_cap else LinkConfig()
    a, b = ReliableLink(config), ReliableLink(config)
    now = 0.0
    arrivals: list[tuple[float, int, str, bytes]] = []  # (time, tiebreak, destination, packet)
    tie = 0
    link_free = {"a": 0.0, "b": 0.0}  # when each direction's bottleneck is free again
    sent_at: dict[bytes, float] = {}
    delays: list[float] = []
    file_bytes = 0
    next_chat = 0.0
    n = 0

    def ship(src: str, packets: list[bytes]) -> None:
        nonlocal tie
        dst = "b" if src == "a" else "a"
        for p in packets:
            if loss and rng.random() < loss:
                continue
            start = max(now, link_free[src])
            link_free[src] = start + (len(p) + 28) * 8 / rate_bps
            tie += 1
            heapq.heappush(arrivals, (link_free[src] + delay_s, tie, dst, p))

    while now < seconds:
        if with_file:
            while a.bulk_pending < 2000 if bulk else a.backlog < 2000:
                a.send(FILE_KIND, CHUNK, bulk=bulk)
        if now >= next_chat:
            body = f"chat {n}".encode()
            n += 1
            sent_at[body] = now
            a.send(CHAT_KIND, body)
            next_chat += chat_interval_s
        ship("a", a.packets_to_send(now))
        ship("b", b.packets_to_send(now))
        times = [next_chat]
        if arrivals:
            times.append(arrivals[0][0])
        for link in (a, b):
            t = link.next_timer()
            if t is not None:
                times.append(t)
        now = max(now, min(times))
        while arrivals and arrivals[0][0] <= now:
            _, _, dst, packet = heapq.heappop(arrivals)
            link = b if dst == "b" else a
            for frame in link.receive_packet(packet, now):
                if frame.kind == CHAT_KIND:
                    delays.append(now - sent_at.pop(frame.body))
                else:
                    file_bytes += len(frame.body)
        for link in (a, b):
            link.handle_timer(now)
    delays.sort()

    def pct(q: float) -> float:
        return delays[min(len(delays) - 1, int(q * len(delays)))] * 1000

    return {"chat_lines": len(delays), "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": delays[-1] * 1000,
            "file_mb_s": file_bytes / seconds / 1e6}


def main() -> int:
    """Both paths, each with the delay-based bulk window and, beside it in the same run, the fixed
    64-frame cap it replaced (the reference)."""
    print(f"{'':34} {'lines':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'file MB/s':>10}")
    for rate, path in ((1e9, "1 Gbit/s"), (100e6, "100 Mbit/s")):
        rows = [("no file", run(with_file=False, rate_bps=rate)),
                ("file, bulk window (21.7)", run(with_file=True, rate_bps=rate)),
                ("file, fixed cap of 64", run(with_file=True, rate_bps=rate, fixed_cap=True)),
                ("file as ordinary frames", run(with_file=True, bulk=False, rate_bps=rate))]
        for loss in (0.02, 0.10):
            rows.append((f"{loss:.0%} loss, bulk window", run(with_file=True, rate_bps=rate, loss=loss)))
            rows.append((f"{loss:.0%} loss, fixed cap", run(with_file=True, rate_bps=rate, loss=loss,
                                                             fixed_cap=True)))
        print(path)
        for name, r in rows:
            print(f"  {name:32} {r['chat_lines']:>6} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}"
                  f" {r['max_ms']:>8.2f} {r['file_mb_s']:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
