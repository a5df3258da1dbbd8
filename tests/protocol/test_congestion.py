"""Congestion control and pacing (RFC 9002 section 7) with a fake clock: the controller alone, then two
reliable links over a path with a fixed delay, driven by their own `next_timer` as a transport would."""

from __future__ import annotations

import random
from collections.abc import Callable
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from labchat.protocol.congestion import CongestionConfig, CongestionController
from labchat.protocol.reliability import LinkConfig, ReliableLink
from labchat.protocol.wire import FLAG_ACK_NOW, MAX_PACKET_BYTES, decode_packet

MSS = MAX_PACKET_BYTES
INITIAL = 10 * MSS
BODY = 1000  # a frame of 1007 bytes: a little under one per packet


class Path:
    """Two links joined by a path with a fixed one-way delay. `drop(i, packet)` chooses which of a's
    packets (numbered from 0) the path loses; b's packets (its ACKs) always arrive. `run` plays the
    event loop of a transport: deliver what arrived, fire due timers, send what is due, sleep until the
    next arrival or timer."""

    def __init__(self, one_way: float = 0.01, a_config: LinkConfig | None = None) -> None:
        self.a = ReliableLink(a_config or LinkConfig())
        self.b = ReliableLink()
        self.one_way = one_way
        self.now = 0.0
        self.wire: list[tuple[float, str, bytes]] = []
        self.sent: list[tuple[float, bytes]] = []  # every packet a sent, with its time
        self.delivered = 0  # frames b delivered
        self.drop: Callable[[int, bytes], bool] = lambda i, p: False
        self.cwnd_log: list[tuple[float, int]] = []
        self.check_in_flight = False

    def _transmit(self) -> None:
        for packet in self.a.packets_to_send(self.now):
            index = len(self.sent)
            self.sent.append((self.now, packet))
            if not self.drop(index, packet):
                self.wire.append((self.now + self.one_way, "b", packet))
        for packet in self.b.packets_to_send(self.now):
            self.wire.append((self.now + self.one_way, "a", packet))

    def run(self, until: float, *, stop_when_idle: bool = True) -> None:
        for _ in range(200_000):
            self._transmit()
            self.cwnd_log.append((self.now, self.a.congestion.cwnd))
            if self.check_in_flight:
                assert self.a.congestion.bytes_in_flight == counted_bytes(self.a)
            if stop_when_idle and self.a.idle and not self.wire:
                return
            times = [t for t, _, _ in self.wire]
            times += [t for t in (self.a.next_timer(), self.b.next_timer()) if t is not None]
            if not times or min(times) > until:
                self.now = until
                return
            self.now = max(self.now, min(times))
            due = [w for w in self.wire if w[0] <= self.now]
            self.wire = [w for w in self.wire if w[0] > self.now]
            for _, to, packet in due:
                if to == "b":
                    self.delivered += len(self.b.receive_packet(packet, self.now))
                else:
                    self.a.receive_packet(packet, self.now)
            for link in (self.a, self.b):
                deadline = link.next_timer()
                if deadline is not None and deadline <= self.now:
                    link.handle_timer(self.now)
        raise AssertionError("the event loop did not settle")

    def warm_up(self) -> None:
        """One small frame there and back: the sender gets an RTT sample, the window stays initial."""
        self.a.send(2, b"hello")
        self.run(self.now + 1.0)
        assert self.a.rtt.srtt is not None

    def bytes_sent_between(self, start: float, end: float) -> int:
        return sum(len(p) for t, p in self.sent if start <= t < end)


def counted_bytes(link: ReliableLink) -> int:
    """What bytes in flight must be: the frames outstanding and not declared lost. Read from the
    link's table (a read-only look inside, for the invariant; nothing is changed)."""
    return sum(7 + len(sent.body) for sent in link._unacked.values() if sent.counted)


# ------------------------------------------------------------------ the controller alone


def test_slow_start_grows_by_every_byte_acknowledged_while_the_window_is_the_limit() -> None:
    cc = CongestionController()
    for round_trip in range(4):
        window = cc.cwnd
        cc.on_sent(window)  # a full window
        cc.on_acked(window, window, now=float(round_trip))
        assert cc.cwnd == 2 * window
    assert cc.cwnd == 16 * INITIAL


def test_a_loss_halves_the_window_once_per_recovery_period() -> None:
    cc = CongestionController()
    cc.on_sent(cc.cwnd)
    cc.on_lost(MSS, largest_sent_at=0.5, now=1.0)
    assert cc.cwnd == INITIAL // 2 and cc.in_recovery
    cc.on_lost(MSS, largest_sent_at=0.9, now=1.05)  # sent before the period began: same event
    assert cc.cwnd == INITIAL // 2
    cc.on_acked(MSS, 0, now=1.1)  # sent before the period: no growth, still in recovery
    assert cc.cwnd == INITIAL // 2 and cc.in_recovery
    cc.on_lost(MSS, largest_sent_at=1.2, now=1.3)  # sent after it: a new event
    assert cc.cwnd == INITIAL // 4
    assert cc.stats.congestion_events == 2


def test_an_ack_of_a_frame_sent_during_recovery_ends_it_and_avoidance_grows_slowly() -> None:
    cc = CongestionController()
    cc.on_sent(cc.cwnd)
    cc.on_lost(MSS, largest_sent_at=0.5, now=1.0)
    window = cc.cwnd
    cc.on_sent(window)
    cc.on_acked(window, window, now=1.2)
    assert not cc.in_recovery and not cc.in_slow_start
    assert window < cc.cwnd <= window + MSS  # about one datagram per window acknowledged


def test_the_window_never_drops_below_the_minimum() -> None:
    cc = CongestionController()
    for i in range(10):
        cc.on_lost(10, largest_sent_at=float(2 * i + 1), now=float(2 * i + 2))
    assert cc.cwnd == 2 * MSS
    cc.on_persistent_congestion(now=100.0)
    assert cc.cwnd == 2 * MSS and not cc.in_recovery


# ------------------------------------------------------------------ the link over a path


def test_slow_start_doubles_the_window_every_round_trip() -> None:
    rtt = 0.02
    path = Path(one_way=rtt / 2)
    path.warm_up()
    start = path.now
    for i in range(600):
        path.a.send(2, bytes(BODY - 1) + bytes([i % 256]))
    windows = []
    for k in range(1, 6):
        path.run(start + k * rtt + rtt / 2, stop_when_idle=False)
        windows.append(path.a.congestion.cwnd)
    # Exactly 2 per round trip in the controller (above); over a path the peer's delayed ACKs (one per
    # 16 packets, or at the window's end) and pacing blur the rounds, so: about 2 on average.
    ratios = [b / a for a, b in pairwise(windows)]
    assert all(1.3 <= r <= 2.5 for r in ratios), (windows, ratios)
    assert 1.6 <= (windows[-1] / windows[0]) ** (1 / 4) <= 2.2, windows
    path.run(start + 10.0)
    assert path.delivered == 601 and path.a.stats.frames_retransmitted == 0


def test_a_burst_of_losses_is_one_congestion_event_and_everything_arrives() -> None:
    path = Path(one_way=0.01)
    path.warm_up()
    first = len(path.sent)
    path.drop = lambda i, p: first + 2 <= i < first + 6  # four packets of the first window
    for i in range(60):
        path.a.send(2, bytes(BODY - 1) + bytes([i]))
    path.run(path.now + 5.0)
    cc = path.a.congestion
    assert path.delivered == 61
    assert cc.stats.congestion_events == 1
    assert cc.ssthresh < 2 * INITIAL  # half of what the window had grown to when the loss was seen
    assert cc.stats.persistent_congestions == 0


def test_a_loss_in_each_round_trip_halves_each_time() -> None:
    path = Path(one_way=0.01)
    path.warm_up()
    sent_before = len(path.sent)
    path.a.send(2, bytes(BODY))
    path.run(path.now + 0.05, stop_when_idle=False)
    # Fill the window, lose one packet; after recovery, lose another one: two events.
    lost = {sent_before + 3, sent_before + 40}
    path.drop = lambda i, p: i in lost
    for i in range(200):
        path.a.send(2, bytes(BODY - 1) + bytes([i % 256]))
    path.run(path.now + 10.0)
    assert path.delivered == 202
    assert path.a.congestion.stats.congestion_events == 2


def test_persistent_congestion_collapses_to_the_minimum_window() -> None:
    path = Path(one_way=0.001)
    path.warm_up()
    for _ in range(3):  # grow the window first
        for i in range(40):
            path.a.send(2, bytes(BODY - 1) + bytes([i]))
        path.run(path.now + 1.0)
    assert path.a.congestion.cwnd > INITIAL
    path.drop = lambda i, p: True  # the path goes dark
    for i in range(20):
        path.a.send(2, bytes(BODY - 1) + bytes([i]))
    path.run(path.now + 1.5, stop_when_idle=False)
    cc = path.a.congestion
    assert cc.stats.persistent_congestions >= 1
    assert cc.cwnd == 2 * MSS
    path.drop = lambda i, p: False  # it comes back: slow start from the minimum, nothing lost
    path.run(path.now + 10.0)
    assert path.delivered == 1 + 120 + 20
    assert cc.cwnd > 2 * MSS


def test_pacing_spreads_a_window_over_the_round_trip() -> None:
    # A window of 40 packets that may burst only 10: the other 30 leave spaced over the RTT.
    cfg = LinkConfig(congestion=CongestionConfig(initial_window_packets=40, pacing_burst_packets=10))
    rtt = 0.1
    path = Path(one_way=rtt / 2, a_config=cfg)
    path.warm_up()
    path.run(path.now + 1.0)  # the warm-up's burst budget is back
    start = path.now
    for i in range(40):
        path.a.send(2, bytes(BODY - 1) + bytes([i]))
    first = path.a.packets_to_send(start)
    burst = sum(len(p) for p in first)
    assert 10 * MSS - BODY <= burst <= 10 * MSS + BODY
    deadline = path.a.next_timer()
    assert deadline is not None and start < deadline < start + rtt / 4  # the pacer, not a loss timer
    path.sent.extend((start, p) for p in first)
    for p in first:
        path.wire.append((start + path.one_way, "b", p))
    path.run(start + rtt, stop_when_idle=False)  # no ACK is back before start + rtt
    times = [t for t, p in path.sent if t >= start and len(p) > 100]
    assert len(times) >= 38
    rate = 1.25 * path.a.congestion.cwnd / (path.a.rtt.min_rtt or rtt)
    spread = times[-1] - times[0]
    assert 0.5 * (30 * (BODY + 7) / rate) <= spread <= rtt  # spaced, yet within one round trip
    gaps = [b - a for a, b in pairwise(times) if b > a]
    assert len(gaps) >= 10  # many small steps, not one burst and one wait


def test_an_app_limited_sender_does_not_grow_the_window() -> None:
    path = Path(one_way=0.005)
    path.warm_up()
    for i in range(200):  # a busy chat: a line every 10 ms, far below the window
        path.a.send(2, b"line %d" % i)
        path.run(path.now + 0.01, stop_when_idle=False)
    path.run(path.now + 1.0)
    cc = path.a.congestion
    assert path.delivered == 201
    assert cc.cwnd == INITIAL
    assert cc.stats.app_limited_acks > 0


def test_a_chat_line_on_an_idle_link_leaves_at_once() -> None:
    path = Path(one_way=0.005)
    path.warm_up()
    for i in range(100):  # a file's worth of traffic first
        path.a.send(2, bytes(BODY - 1) + bytes([i]))
    path.run(path.now + 5.0)
    path.run(path.now + 0.5, stop_when_idle=False)  # idle for a moment
    path.a.send(2, b"hi all")
    packets = path.a.packets_to_send(path.now)
    assert len(packets) == 1 and b"hi all" in packets[0]


def test_a_busy_room_never_waits_for_the_window_or_the_pacer() -> None:
    # One member's link at 1000 messages a second of 120 bytes (the bench's 100 x 1000 row), arriving
    # in bursts of 25 every 25 ms as a busy server flushes them, over a 2 ms round trip: every message
    # leaves in the call that queues it.
    path = Path(one_way=0.001)
    path.warm_up()
    for burst in range(80):
        for i in range(25):
            path.a.send(2, bytes(119) + bytes([i]))
        before = path.a.backlog
        path.run(path.now, stop_when_idle=False)  # the flush at this instant
        assert path.a.in_flight == before and not path.a.congestion.window_limited, burst
        path.run(path.now + 0.025, stop_when_idle=False)
    path.run(path.now + 1.0)
    assert path.delivered == 1 + 80 * 25
    assert path.a.congestion.cwnd == INITIAL


def test_acks_and_timeout_probes_are_never_held_back_by_a_full_window() -> None:
    a, b = ReliableLink(), ReliableLink()
    for i in range(30):
        a.send(2, bytes(BODY - 1) + bytes([i]))
    first = a.packets_to_send(0.0)
    assert a.congestion.bytes_in_flight >= a.congestion.cwnd and a.backlog > a.in_flight
    assert decode_packet(first[-1]).ack_now  # the packet that filled the window asks for its ACK
    assert not a.wants_to_send
    # b sends a frame to a: a owes an ACK and sends it although its window is full.
    b.send(2, b"from b")
    for p in b.packets_to_send(0.0):
        a.receive_packet(p, 0.001)
    owed = a.next_timer()
    assert owed is not None
    ack_only = a.packets_to_send(owed)
    assert len(ack_only) == 1 and decode_packet(ack_only[0]).frames == ()
    # Nothing comes back for a: its retransmission timer fires and the probe leaves.
    rto = a.next_timer()
    assert rto is not None
    a.handle_timer(rto)
    assert a.wants_to_send
    probes = a.packets_to_send(rto)
    assert probes and all(p[0] & FLAG_ACK_NOW for p in probes)
    assert a.stats.frames_retransmitted >= 1


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), loss=st.sampled_from([0.0, 0.05, 0.2, 0.4]))
def test_bytes_in_flight_match_the_frames_counted_and_everything_arrives(seed: int, loss: float) -> None:
    rng = random.Random(seed)
    path = Path(one_way=rng.choice([0.0005, 0.005, 0.03]))
    path.drop = lambda i, p: rng.random() < loss
    path.check_in_flight = True
    sizes = [rng.choice([5, 80, BODY]) for _ in range(rng.randint(1, 120))]
    for i, size in enumerate(sizes):
        path.a.send(2, bytes(size - 1) + bytes([i % 256]))
    path.run(120.0)
    assert path.delivered == len(sizes)
    cc = path.a.congestion
    assert cc.bytes_in_flight == 0
    assert cc.cwnd >= 2 * MSS
