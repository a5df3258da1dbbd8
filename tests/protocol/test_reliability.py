"""The reliable link under loss, duplication and reordering, with a fake clock (no sockets, no sleeps)."""

from __future__ import annotations

import random

import pytest

from labchat.protocol.congestion import CongestionConfig
from labchat.protocol.errors import DecodeError
from labchat.protocol.reliability import LinkConfig, ReliableLink, RttEstimator
from labchat.protocol.wire import Ack, encode_packet


class LossyPipe:
    """Two links joined by a path that drops, duplicates and reorders, driven by a seeded RNG."""

    def __init__(
        self,
        *,
        loss: float = 0.0,
        dup: float = 0.0,
        reorder: float = 0.0,
        seed: int = 1,
        delay: float = 0.001,
    ) -> None:
        self.a = ReliableLink(LinkConfig())
        self.b = ReliableLink(LinkConfig())
        self.rng = random.Random(seed)
        self.loss, self.dup, self.reorder, self.delay = loss, dup, reorder, delay
        self.in_flight: list[tuple[float, str, bytes]] = []
        self.now = 0.0
        self.got = {"a": [], "b": []}  # type: dict[str, list[bytes]]

    def _ship(self, src: str, packets: list[bytes]) -> None:
        dst = "b" if src == "a" else "a"
        for p in packets:
            if self.rng.random() < self.loss:
                continue
            copies = 2 if self.rng.random() < self.dup else 1
            for _ in range(copies):
                extra = self.delay * 5 if self.rng.random() < self.reorder else 0.0
                self.in_flight.append((self.now + self.delay + extra, dst, p))

    def step(self) -> None:
        """Advance to the next arrival or timer, deliver, and let both sides send."""
        times = [t for t, _, _ in self.in_flight]
        for link in (self.a, self.b):
            t = link.next_timer()
            if t is not None:
                times.append(t)
        assert times, "stalled: frames outstanding but no timer armed"
        self.now = max(self.now, min(times))
        due = [x for x in self.in_flight if x[0] <= self.now]
        self.in_flight = [x for x in self.in_flight if x[0] > self.now]
        for _, dst, packet in due:
            link = self.a if dst == "a" else self.b
            for frame in link.receive_packet(packet, self.now):
                self.got[dst].append(frame.body)
        for name, link in (("a", self.a), ("b", self.b)):
            link.handle_timer(self.now)
            self._ship(name, link.packets_to_send(self.now))

    def run(self, until: float = 120.0) -> None:
        for name, link in (("a", self.a), ("b", self.b)):
            self._ship(name, link.packets_to_send(self.now))
        while self.now < until and (not self.a.idle or not self.b.idle or self.in_flight):
            self.step()


def test_perfect_path_delivers_in_order_and_packs_frames() -> None:
    pipe = LossyPipe()
    bodies = [f"m{i}".encode() for i in range(100)]
    for body in bodies:
        pipe.a.send(2, body)
    pipe.run()
    assert pipe.got["b"] == bodies
    assert pipe.a.stats.packets_sent < 10  # many frames per datagram
    assert pipe.a.stats.frames_retransmitted == 0


@pytest.mark.parametrize("seed", range(5))
def test_heavy_loss_dup_reorder_exactly_once_in_order(seed: int) -> None:
    pipe = LossyPipe(loss=0.3, dup=0.1, reorder=0.2, seed=seed)
    a_bodies = [f"a{i}".encode() for i in range(300)]
    b_bodies = [f"b{i}".encode() for i in range(300)]
    for x, y in zip(a_bodies, b_bodies, strict=True):
        pipe.a.send(2, x)
        pipe.b.send(2, y)
    pipe.run()
    assert pipe.got["b"] == a_bodies
    assert pipe.got["a"] == b_bodies
    assert pipe.a.idle and pipe.b.idle


def test_one_lost_packet_is_retransmitted_once_by_fast_retransmit() -> None:
    a, b = ReliableLink(), ReliableLink()
    now = 0.0
    for i in range(5):
        a.send(2, b"x" * 1000 + bytes([i]))  # one frame per packet
    packets = a.packets_to_send(now)
    assert len(packets) == 5
    now = 0.01
    # The first packet is lost; the other four arrive and are SACKed.
    for p in packets[1:]:
        assert b.receive_packet(p, now) == []
    (ack,) = b.packets_to_send(now)
    now = 0.2
    a.receive_packet(ack, now)
    assert a.packets_to_send(now) == []  # not yet 9/8 RTT old: reordering is still possible
    loss_timer = a.next_timer()
    assert loss_timer is not None and loss_timer < 0.5  # before the retransmission timeout
    now = loss_timer
    a.handle_timer(now)
    resent = a.packets_to_send(now)
    assert len(resent) == 1
    assert len(b.receive_packet(resent[0], now)) == 5
    assert a.stats.frames_retransmitted == 1


def test_timeout_backs_off_exponentially_up_to_the_cap() -> None:
    cfg = LinkConfig(rto_initial_s=0.5, rto_max_s=2.0)
    a = ReliableLink(cfg)
    a.send(2, b"hello")
    now = 0.0
    a.packets_to_send(now)
    gaps = []
    for _ in range(5):
        deadline = a.next_timer()
        assert deadline is not None
        gaps.append(round(deadline - now, 6))
        now = deadline
        a.handle_timer(now)
        assert len(a.packets_to_send(now)) == 1
    assert gaps == [0.5, 1.0, 2.0, 2.0, 2.0]


def test_rtt_estimator_follows_rfc6298() -> None:
    est = RttEstimator(LinkConfig(rto_min_s=0.0, granularity_s=0.0))
    assert est.rto == 0.5
    est.update(0.1)
    assert est.srtt == pytest.approx(0.1)
    assert est.rttvar == pytest.approx(0.05)
    assert est.rto == pytest.approx(0.3 + 0.025)  # + max_ack_delay, as RFC 9002's PTO
    est.update(0.2)
    assert est.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.1)
    assert est.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.2)


def test_rto_is_clamped() -> None:
    est = RttEstimator(LinkConfig(rto_min_s=0.1, rto_max_s=2.0))
    est.update(0.0001)
    assert est.rto == 0.1
    est.update(10.0)
    assert est.rto == 2.0


def test_duplicates_are_counted_and_acknowledged_again() -> None:
    a, b = ReliableLink(), ReliableLink()
    a.send(2, b"x")
    (p,) = a.packets_to_send(0.0)
    assert len(b.receive_packet(p, 0.0)) == 1
    b.packets_to_send(0.0)
    assert b.receive_packet(p, 0.1) == []
    assert b.stats.duplicates_received == 1
    assert b.wants_to_send  # the duplicate means our ACK was lost: acknowledge again


def test_window_limits_frames_in_flight() -> None:
    a = ReliableLink(LinkConfig(max_in_flight=10))
    for i in range(50):
        a.send(2, bytes([i]))
    a.packets_to_send(0.0)
    assert a.in_flight == 10
    assert a.backlog == 50


def test_frames_beyond_the_receive_window_are_dropped() -> None:
    # 20 KB at once: a congestion window larger than the default 10 packets lets them all go.
    wide = CongestionConfig(initial_window_packets=32, pacing_burst_packets=32)
    a = ReliableLink(LinkConfig(max_in_flight=100, congestion=wide))
    b = ReliableLink(LinkConfig(receive_window=8))
    for i in range(20):
        a.send(2, b"y" * 1000 + bytes([i]))
    packets = a.packets_to_send(0.0)
    for p in packets[1:]:
        b.receive_packet(p, 0.0)
    assert b.stats.beyond_window_dropped == 20 - 1 - 7  # seqs 2..8 fit the window


def test_ack_for_unsent_frames_is_a_decode_error() -> None:
    a = ReliableLink()
    with pytest.raises(DecodeError):
        a.receive_packet(encode_packet(Ack(3), []), 0.0)


def test_oversized_frame_is_refused_locally() -> None:
    with pytest.raises(ValueError):
        ReliableLink().send(2, b"x" * 2000)


def _one_frame_packets(sender: ReliableLink, count: int, now: float) -> list[bytes]:
    out = []
    for i in range(count):
        sender.send(2, bytes([i]))
        out += sender.packets_to_send(now)
    return out


def test_a_lone_packet_is_acknowledged_after_max_ack_delay() -> None:
    cfg = LinkConfig(max_ack_delay_s=0.025, ack_every=16)
    a, b = ReliableLink(cfg), ReliableLink(cfg)
    (p,) = _one_frame_packets(a, 1, 0.0)
    b.receive_packet(p, 0.0)
    assert b.packets_to_send(0.01) == []  # nothing to ride on yet, and the ACK may still wait
    assert b.next_timer() == pytest.approx(0.025)
    (ack,) = b.packets_to_send(0.025)
    a.receive_packet(ack, 0.026)
    assert a.idle
    assert a.rtt.srtt == pytest.approx(0.001)  # the 25 ms the ACK was held is not path delay


def test_a_stream_is_acknowledged_once_per_ack_every_packets() -> None:
    cfg = LinkConfig(max_ack_delay_s=0.025, ack_every=4)
    a, b = ReliableLink(cfg), ReliableLink(cfg)
    acks = 0
    for p in _one_frame_packets(a, 12, 0.0):
        b.receive_packet(p, 0.0)
        acks += len(b.packets_to_send(0.0))
    assert acks == 3


def test_a_gap_is_acknowledged_at_once() -> None:
    cfg = LinkConfig(max_ack_delay_s=0.025, ack_every=16)
    a, b = ReliableLink(cfg), ReliableLink(cfg)
    first, second = _one_frame_packets(a, 2, 0.0)
    b.receive_packet(second, 0.0)  # the first was lost or is late
    (ack,) = b.packets_to_send(0.0)
    assert b.receive_packet(first, 0.001)
    assert b.packets_to_send(0.001)  # the gap closed: say so now, too
    assert ack


def test_nothing_owed_means_nothing_built() -> None:
    a = ReliableLink()
    assert a.packets_to_send(0.0) == []
    assert not a.wants_to_send


def test_a_timeout_resends_a_bounded_probe_flagged_ack_now() -> None:
    cfg = LinkConfig(rto_probe_frames=4, max_in_flight=100)
    a, b = ReliableLink(cfg), ReliableLink(cfg)
    for i in range(40):
        a.send(2, b"p" * 200 + bytes([i]))  # five frames per packet: eight packets
    first = a.packets_to_send(0.0)
    deadline = a.next_timer()
    assert deadline == pytest.approx(cfg.rto_initial_s)
    a.handle_timer(deadline)
    probe = a.packets_to_send(deadline)
    assert a.stats.frames_retransmitted == 4  # the oldest four, not all forty
    assert len(probe) == 1 and probe[0][0] & 0x02  # ACK_NOW
    # The peer was only slow: everything arrives, the probe last. It answers at once.
    for p in first:
        b.receive_packet(p, deadline)
    b.packets_to_send(deadline + 0.001)  # maybe an ACK (every 16 packets), maybe not yet
    b.receive_packet(probe[0], deadline + 0.002)
    (ack,) = b.packets_to_send(deadline + 0.002)  # a duplicate probe: acknowledged without delay
    a.receive_packet(ack, deadline + 0.003)
    assert a.idle


def test_after_an_outage_the_probe_answers_clock_out_the_rest() -> None:
    cfg = LinkConfig(rto_probe_frames=4, max_in_flight=100)
    a, b = ReliableLink(cfg), ReliableLink(cfg)
    for i in range(40):
        a.send(2, b"q" * 200 + bytes([i]))
    a.packets_to_send(0.0)  # all lost
    now, got, rounds = 0.0, 0, 0
    while not a.idle:
        rounds += 1
        assert rounds < 50
        deadline = a.next_timer()
        assert deadline is not None
        now = max(now, deadline)
        a.handle_timer(now)
        for p in a.packets_to_send(now):
            got += len(b.receive_packet(p, now + 0.001))
        for p in b.packets_to_send(now + 0.001):  # probes are answered at once, not after 25 ms
            a.receive_packet(p, now + 0.002)
        now += 0.002
    assert got == 40
    assert now < cfg.rto_initial_s + 0.1  # one timeout, then a round trip per probe


def _with_rtt_sample(a: ReliableLink, b: ReliableLink, now: float) -> float:
    """One frame there and its ACK back, 1 ms each way: the link then has an RTT of 2 ms."""
    a.send(2, b"warm")
    for p in a.packets_to_send(now):
        b.receive_packet(p, now + 0.001)
    b.handle_timer(now + 0.001 + LinkConfig().max_ack_delay_s)
    now += 0.002 + LinkConfig().max_ack_delay_s
    for p in b.packets_to_send(now - 0.001):
        a.receive_packet(p, now)
    assert a.idle and a.rtt.srtt is not None
    return now


def test_a_silent_tail_is_probed_long_before_the_retransmission_timeout() -> None:
    a, b = ReliableLink(), ReliableLink()
    now = _with_rtt_sample(a, b, 0.0)
    for i in range(3):
        a.send(2, b"t" * 1000 + bytes([i]))  # one frame per packet; all three are lost
    sent = a.packets_to_send(now)
    assert len(sent) == 3
    start = now
    cwnd = a.congestion.cwnd
    gaps = []
    for _ in range(3):  # three probes, each after twice the previous wait, each the newest frame
        deadline = a.next_timer()
        assert deadline is not None
        gaps.append(deadline - now)
        now = deadline
        a.handle_timer(now)
        (probe,) = a.packets_to_send(now)
        assert probe[0] & 0x02  # ACK_NOW
        assert probe.endswith(b"t" * 1000 + bytes([2]))
    # The first waits for the peer's delayed ACK too; the probes ask for theirs at once (ACK_NOW).
    assert gaps[0] < LinkConfig().rto_min_s / 2
    assert gaps[1] < gaps[0] and gaps[2] == pytest.approx(2 * gaps[1], rel=0.01)
    assert a.congestion.cwnd == cwnd and a.congestion.stats.persistent_congestions == 0  # no penalty
    # No more probes: the retransmission timer is what is left.
    deadline = a.next_timer()
    assert deadline == pytest.approx(start + a.rtt.rto)  # timed from the oldest frame, as before
    a.handle_timer(deadline)
    assert a._backoff == 1


def test_an_answered_probe_finds_the_lost_frames_of_a_small_window() -> None:
    a, b = ReliableLink(), ReliableLink()
    now = _with_rtt_sample(a, b, 0.0)
    for i in range(3):
        a.send(2, b"s" * 1000 + bytes([i]))
    sent = a.packets_to_send(now)
    deadline = a.next_timer()
    assert deadline is not None
    now = deadline
    a.handle_timer(now)
    (probe,) = a.packets_to_send(now)  # the first two packets were lost; the probe arrives
    delivered = b.receive_packet(probe, now + 0.001)
    assert delivered == []  # a gap: acknowledged at once, with a SACK range
    (ack,) = b.packets_to_send(now + 0.001)
    now += 0.002
    a.receive_packet(ack, now)
    # Below the largest acknowledged and old enough: lost at once, not after the 100 ms timeout.
    resent = a.packets_to_send(now)
    assert resent and a.stats.frames_retransmitted == 3  # the probe, then the two lost frames
    got: list[bytes] = []
    for p in resent:
        got += [f.body for f in b.receive_packet(p, now + 0.001)]
    assert got == [s[-1001:] for s in sent[:2]] + [sent[2][-1001:]]
