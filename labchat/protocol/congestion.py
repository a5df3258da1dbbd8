"""Congestion window and pacing for the reliable link (RFC 9002 section 7, NewReno), sans-I/O.

The reliable link (`reliability.py`) decides *what* to send and when a frame is acknowledged or lost;
this module decides *how much* may be outstanding and *how fast* it may leave, so that a file
streaming over a shared lab network backs off when the network drops packets instead of driving
everyone else's chat into the loss. Chat alone never notices it: the initial window holds ten full
packets, far more than a room's traffic puts in flight in one round trip on a LAN, and an idle link
has a full pacing budget, so a chat line leaves at once.

The controller counts **bytes of frames** (header and body) rather than datagrams: a frame is the unit
the link retransmits and acknowledges, and a packet is rebuilt from whatever frames are due, so bytes
in flight are the sum of the frames sent and neither acknowledged nor declared lost. ACK-only packets
carry no frames and are never counted nor held back (RFC 9002 section 7).

The rules (RFC 9002 sections 7.2-7.8, and Appendix B):

  * **Slow start.** The window starts at `initial_window` and grows by every byte acknowledged, so a
    sender that keeps it full doubles it every round trip.
  * **Recovery.** A loss of a frame sent after the current recovery period began halves the window
    (`LOSS_REDUCTION_FACTOR`) and starts a new period at `now`. Losses and acknowledgements of frames
    sent before that moment change nothing: one reduction per round trip however many frames a burst
    loses. The period ends when a frame sent inside it is acknowledged.
  * **Congestion avoidance.** Above the slow start threshold the window grows by about one maximum
    datagram per window acknowledged.
  * **Persistent congestion.** When everything sent over `persistent_congestion_duration` was lost, the
    window collapses to `minimum_window` (two datagrams) and slow start begins again.
  * **Application-limited.** Acknowledgements grow the window only while the window was the limit:
    a chat that never fills it must not build a huge window that a later burst would use at once
    (RFC 9002 section 7.8).
  * **Pacing** (section 7.7): once the window has grown past the initial window, frames leave at
    `PACING_GAIN` x window / RTT, with bursts up to the initial window, so a grown window is spread
    over the round trip instead of leaving as one burst that overflows a switch buffer. The RTT is
    the path's minimum (RFC 9002 5.2's min_rtt), not the smoothed one that section 7.7 suggests: on a
    LAN, SRTT is mostly how late a busy event loop answers, and pacing a window over that would
    delay a busy room's messages by up to a whole inflated round trip (measured: a server holding
    back frames 9 000 times in 10 s at 1000 messages a second) without relieving any queue. A
    window no larger than the burst is not paced at all, and one tick of the owner's timer (5 ms)
    worth of the rate may leave at once: on a LAN the window is what bounds a burst.

Time is always a parameter: nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from .wire import MAX_PACKET_BYTES

#: RFC 9002's kInitialWindow: min(10 x max_datagram_size, max(14720, 2 x max_datagram_size)).
INITIAL_WINDOW_PACKETS = 10
#: RFC 9002's kMinimumWindow: 2 x max_datagram_size.
MINIMUM_WINDOW_PACKETS = 2
#: RFC 9002's kLossReductionFactor.
LOSS_REDUCTION_FACTOR = 0.5
#: RFC 9002's kPersistentCongestionThreshold: round trips (with variance and ACK delay) without any
#: acknowledgement before the window collapses.
PERSISTENT_CONGESTION_THRESHOLD = 3
#: RFC 9002 section 7.7's N: pacing a little faster than window / RTT, so the pacer never becomes
#: the bottleneck of a link the window allows to go faster.
PACING_GAIN = 1.25
#: Floor of the RTT used for the pacing rate. A loopback sample can be 0 (the ACK delay is reported in
#: whole milliseconds and subtracted), which would make the rate infinite.
PACING_MIN_RTT_S = 0.0001


@dataclass(frozen=True, slots=True)
class CongestionConfig:
    """Knobs of one congestion controller. The defaults are RFC 9002's for a 1163-byte packet."""

    #: The largest packet the link builds: the unit of the windows below.
    max_datagram_bytes: int = MAX_PACKET_BYTES
    #: Window before any loss, in datagrams (RFC 9002: 10). A LAN chat room does not fill it: at 1000
    #: messages a second a member's link carries a few KB per round trip (docs/performance.md,
    #: "Congestion control and chat").
    initial_window_packets: int = INITIAL_WINDOW_PACKETS
    #: Floor of the window, in datagrams, after persistent congestion.
    minimum_window_packets: int = MINIMUM_WINDOW_PACKETS
    #: Pacing rate = gain x window / minimum RTT.
    pacing_gain: float = PACING_GAIN
    #: Bytes that may leave back to back before the pacer spaces them, in datagrams. RFC 9002 7.7:
    #: "senders SHOULD limit bursts to the initial congestion window". An idle link has all of it,
    #: so a chat line never waits for the pacer.
    pacing_burst_packets: int = INITIAL_WINDOW_PACKETS
    #: When the pacer holds frames back, how much budget to wait for before sending again, in
    #: datagrams: one wake-up per two packets instead of one per frame.
    pacing_quantum_packets: int = 2
    #: Resolution of the owner's timers (the server fires its timers on a 5 ms grid; RFC 9002's
    #: kGranularity). The pacer lets one tick's worth of its rate leave at once, so on a LAN, whose
    #: round trip is shorter than a tick, a window is bounded by the window alone.
    timer_granularity_s: float = 0.005

    @property
    def initial_window(self) -> int:
        return self.initial_window_packets * self.max_datagram_bytes

    @property
    def minimum_window(self) -> int:
        return self.minimum_window_packets * self.max_datagram_bytes


class Pacer:
    """A token bucket of bytes, refilled at the pacing rate (RFC 9002 section 7.7).

    `budget` may go negative by the last frame sent: the bucket is checked before a frame, not
    against its size, so a frame larger than what is left still leaves and the next one waits longer.
    The rate is not stored: the controller refills the bucket (`refill_pacer`) at the rate its window
    and RTT give at that moment; with no RTT sample yet, or a window no larger than the bucket, it
    fills the bucket at once: the window alone then bounds the burst.
    """

    __slots__ = ("budget", "capacity", "quantum", "updated_at")

    def __init__(self, capacity: int, quantum: int) -> None:
        self.capacity = capacity
        self.quantum = min(quantum, capacity)
        self.updated_at = 0.0
        self.budget = float(capacity)

    def release_at(self, rate: float | None) -> float | None:
        """When the budget, now exhausted, is back to one quantum; None if it is not exhausted."""
        if self.budget > 0:
            return None
        if rate is None:
            return self.updated_at
        return self.updated_at + (self.quantum - self.budget) / rate


class CongestionController:
    """NewReno congestion window with a pacer (RFC 9002 section 7). See the module docstring.

    Fed by the reliable link: `on_sent` for every frame transmission that counts (not ACK-only packets,
    not timeout probes), `on_acked` and `on_lost` for frames that were counted, `on_persistent_congestion`
    when the link has seen a whole persistent congestion period lost, `refill_pacer` before sending.
    Asked: `can_send()` (bytes in flight below the window) and the `pacer`.
    """

    __slots__ = (
        "bytes_in_flight", "config", "cwnd", "pacer", "recovery_start", "ssthresh", "stats",
        "window_limited",
    )  # fmt: skip

    def __init__(self, config: CongestionConfig | None = None) -> None:
        self.config = config or CongestionConfig()
        self.cwnd = self.config.initial_window
        self.ssthresh: float = float("inf")
        self.bytes_in_flight = 0
        #: When the current recovery period began: frames sent at or before it neither grow the window
        #: nor start another period. -inf when not in recovery (a plain float: the link compares every
        #: acknowledged frame's send time with it).
        self.recovery_start = float("-inf")
        #: The window (or the pacer) held a frame back, or was nearly full, since the last ACK: only
        #: then may the next ACK grow it (RFC 9002 section 7.8).
        self.window_limited = False
        cfg = self.config
        self.pacer = Pacer(cfg.pacing_burst_packets * cfg.max_datagram_bytes,
                           cfg.pacing_quantum_packets * cfg.max_datagram_bytes)
        self.stats = CongestionStats()

    # ------------------------------------------------------------ questions

    def can_send(self) -> bool:
        """True while bytes in flight are below the window. A frame may overshoot it by its own size:
        frames are small (at most ~1 KB) and this keeps a minimum window from ever deadlocking."""
        return self.bytes_in_flight < self.cwnd

    @property
    def in_recovery(self) -> bool:
        return self.recovery_start != float("-inf")

    @property
    def in_slow_start(self) -> bool:
        return self.cwnd < self.ssthresh

    # ------------------------------------------------------------ signals

    def on_sent(self, size: int) -> None:
        """Frames (re)transmitted under congestion control: `size` bytes more in flight."""
        self.bytes_in_flight += size
        self.pacer.budget -= size
        if self.bytes_in_flight >= self.cwnd - self.config.max_datagram_bytes:
            self.window_limited = True  # (nearly) full: the next ACKs may grow it

    def on_blocked(self) -> None:
        """The window or the pacer held back a frame that was ready: the sender is not app-limited."""
        self.window_limited = True

    def on_acked(self, size: int, growth: int, now: float) -> None:
        """Frames totalling `size` bytes, all counted in flight, were newly acknowledged; `growth` of
        those bytes were sent after the current recovery period began (all of them outside recovery).

        Only `growth` bytes may grow the window (RFC 9002 section 7.3.2), and only if the window was
        the limit since the last acknowledgement (section 7.8). A frame sent inside the recovery period
        coming back ends the period.
        """
        # Full before this ACK (timeout probes of a collapsed window, say) counts as limited too.
        limited = self.window_limited or self.bytes_in_flight >= self.cwnd - self.config.max_datagram_bytes
        self.bytes_in_flight = max(self.bytes_in_flight - size, 0)
        if growth <= 0:
            return
        self.recovery_start = float("-inf")
        if not limited:
            self.stats.app_limited_acks += 1
            return
        if self.cwnd < self.ssthresh:
            self.cwnd += growth  # slow start: one byte per byte acknowledged
        else:
            self.cwnd += max(self.config.max_datagram_bytes * growth // self.cwnd, 1)  # avoidance
        self.window_limited = self.bytes_in_flight >= self.cwnd - self.config.max_datagram_bytes

    def on_lost(self, size: int, largest_sent_at: float, now: float) -> None:
        """Frames totalling `size` bytes (counted in flight) were declared lost; the most recently sent
        of them left at `largest_sent_at`. Enters recovery unless the loss belongs to the current
        period (RFC 9002 section 7.3.2: one reduction per round trip)."""
        self.bytes_in_flight = max(self.bytes_in_flight - size, 0)
        self.on_congestion_event(largest_sent_at, now)

    def on_congestion_event(self, sent_at: float, now: float) -> None:
        """A frame sent at `sent_at` was lost: halve the window, once per recovery period."""
        if sent_at <= self.recovery_start:
            return
        self.recovery_start = now
        self.ssthresh = max(self.cwnd * LOSS_REDUCTION_FACTOR, float(self.config.minimum_window))
        self.cwnd = int(self.ssthresh)
        self.window_limited = False
        self.stats.congestion_events += 1

    def on_persistent_congestion(self, now: float) -> None:
        """Everything sent over a whole persistent congestion period was lost (RFC 9002 section 7.6):
        the path may have changed completely; start again from the minimum window. Recovery ends, so
        the first acknowledgement of the new start grows the window again."""
        if not self.in_recovery:  # the loss that told us is a congestion event of its own
            self.ssthresh = max(self.cwnd * LOSS_REDUCTION_FACTOR, float(self.config.minimum_window))
            self.stats.congestion_events += 1
        self.cwnd = self.config.minimum_window
        self.recovery_start = float("-inf")
        self.window_limited = False
        self.stats.persistent_congestions += 1

    def pacing_rate(self, rtt: float | None) -> float | None:
        """Bytes per second the pacer refills at: gain x window / `rtt`, the path's minimum RTT (see
        the module docstring). None (no pacing) before an RTT sample, or while the window is no
        larger than the pacer's burst (`refill_pacer`)."""
        if rtt is None or self.cwnd <= self.pacer.capacity:
            return None
        return self.config.pacing_gain * self.cwnd / max(rtt, PACING_MIN_RTT_S)

    def refill_pacer(self, rtt: float | None, now: float) -> None:
        """Credit the pacer for the time since its last refill, before frames may leave at `now`.
        (`pacing_rate` inlined: this runs before every packet a server sends.)"""
        pacer = self.pacer
        if rtt is None or self.cwnd <= pacer.capacity:
            # No RTT yet, or a window no larger than the burst: the window alone bounds what leaves
            # back to back (RFC 9002 7.7 allows a burst of the initial window).
            pacer.budget = float(pacer.capacity)
        elif now > pacer.updated_at:
            rate = self.config.pacing_gain * self.cwnd / max(rtt, PACING_MIN_RTT_S)
            # What the rate gives in one tick of the owner's timer may leave at once: spacing it
            # finer would only come out as the same burst one tick later.
            most = max(float(pacer.capacity), rate * self.config.timer_granularity_s)
            pacer.budget = min(pacer.budget + rate * (now - pacer.updated_at), most)
        if now > pacer.updated_at:
            pacer.updated_at = now

    def pacer_release_at(self, rtt: float | None) -> float | None:
        """When an exhausted pacer lets frames go again; None if it is not exhausted."""
        return self.pacer.release_at(self.pacing_rate(rtt))


def persistent_congestion_duration(srtt: float, rttvar: float, granularity_s: float,
                                   max_ack_delay_s: float) -> float:
    """RFC 9002 section 7.6.1: (smoothed_rtt + max(4 x rttvar, kGranularity) + max_ack_delay) x 3."""
    return (srtt + max(4 * rttvar, granularity_s) + max_ack_delay_s) * PERSISTENT_CONGESTION_THRESHOLD


@dataclass(slots=True)
class CongestionStats:
    """Counters for logs, tests and benchmarks."""

    congestion_events: int = 0
    persistent_congestions: int = 0
    app_limited_acks: int = 0
