"""Reliable, ordered, duplicate-free delivery of frames over a lossy datagram path.

Each side of a session owns one `ReliableLink`. It numbers the frames it sends (1, 2, 3, ...), keeps each
one until the peer acknowledges it, and retransmits what the peer is missing. On the receive side it
delivers frames to its owner exactly once and in order, holding early arrivals in a bounded reorder
buffer and reporting them back as SACK ranges, so one lost datagram costs one retransmission, not the
resending of everything after it.

Loss is detected two ways, as in QUIC (RFC 9002):
  * time threshold: a frame is lost when a later one has been acknowledged and at least 9/8 of an RTT
    has passed since it was sent ("fast retransmit"; a tail loss probe asks for that ACK when the
    last frames of a round met with silence);
  * timeout: a frame still unacknowledged `rto` after it was sent is sent again, and the timeout doubles
    for each consecutive expiry (exponential back-off) until an acknowledgement makes progress.

The retransmission timeout follows RFC 6298 (smoothed RTT and variance, Karn's rule for samples) with
bounds chosen for a LAN (see `LinkConfig`). Time is always a parameter: nothing here reads a clock.

How much may be outstanding and how fast it leaves is the `CongestionController`'s (congestion.py):
new frames and fast retransmissions go out while bytes in flight are below its window and its pacer
has budget; ACK-only packets and timeout probes are never held back. Frames held back by the pacer
give `next_timer` a deadline; frames held back by the window wait for an ACK, and the packet that
fills the window asks for that ACK at once (ACK_NOW), so the sender is clocked by ACKs instead of the
peer's delayed-ACK timer.

Chat goes before files (docs/protocol.md 21.7): `send(..., bulk=True)` puts a frame in a queue of its
own that feeds the window only when no other frame waits (neither a new one nor a lost one), and a
lost chat frame is resent before a lost file frame. A bulk frame takes its sequence number when it
leaves that queue, not when it enters it: a chat frame sent after a thousand queued file chunks is
numbered (and delivered) before them, instead of waiting in the peer's reorder buffer for them.
Bulk frames keep their order among themselves; a later ordinary frame may overtake them.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from .bulk_window import BulkWindow, BulkWindowConfig
from .congestion import CongestionConfig, CongestionController, persistent_congestion_duration
from .errors import DecodeError
from .wire import (
    FLAG_ACK,
    FLAG_ACK_NOW,
    FRAME_HEADER_BYTES,
    MAX_ACK_RANGES,
    MAX_FRAME_BODY_BYTES,
    MAX_PACKET_BYTES,
    Ack,
    Frame,
    decode_packet,
    encode_ack,
    encode_frame_header,
)

#: RFC 9002's kTimeThreshold: a frame below the largest acknowledged is lost once this many RTTs old.
#: There is no separate packet threshold (RFC 9002's kPacketThreshold, 3): it was only ever applied
#: together with this one, and it left a window of three frames or fewer (what 10 % random loss
#: leaves a loss-based window with) no way to detect a loss but the 100 ms retransmission timer.
TIME_THRESHOLD = 9 / 8
#: Tail loss probes per acknowledgement before only the retransmission timer is left (docs/protocol.md
#: 5.7). Each waits twice as long as the one before; a probe is a single frame.
TLP_MAX_PROBES = 3


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Knobs of one reliable link. The defaults suit a LAN; tests shrink them to run fast."""

    #: Retransmission timeout before any RTT sample (RFC 6298 says 1 s; a LAN answers far faster).
    rto_initial_s: float = 0.5
    #: Floor of the timeout. RFC 6298's 1 s floor is for the Internet; on a LAN 100 ms still leaves
    #: room for a busy event loop while recovering a loss quickly.
    rto_min_s: float = 0.1
    #: Ceiling of the timeout after back-off, so a link recovers within seconds once the path returns.
    rto_max_s: float = 2.0
    #: Clock granularity G of RFC 6298.
    granularity_s: float = 0.005
    #: Frames in flight (sent, unacknowledged) at most; the rest wait in the send queue.
    max_in_flight: int = 512
    #: How far above the cumulative point the receiver buffers early frames; later ones are dropped
    #: (the sender will resend them), which bounds the reorder buffer's memory.
    receive_window: int = 1024
    #: Longest an ACK may wait for something to ride on (RFC 9000's max_ack_delay, 25 ms there too).
    #: A gap or a duplicate is acknowledged at once; otherwise a stream of packets is acknowledged
    #: once per `ack_every` packets or per `max_ack_delay_s`, whichever comes first (the ACK-frequency
    #: extension of QUIC). The congestion window needs no frequent ACKs: the packet that fills it
    #: asks for its ACK at once (ACK_NOW, docs/protocol.md 5.7). Each ACK costs a datagram, a seal
    #: and a wake-up at both ends, so a room of 100 busy members must not answer every fan-out
    #: datagram. It stays well under `rto_min_s`, so a delayed ACK never looks like a loss.
    max_ack_delay_s: float = 0.025
    #: Packets carrying frames that make an ACK go out at once (see `max_ack_delay_s`).
    ack_every: int = 16
    #: Frames resent when the retransmission timer fires: the oldest few, flagged ACK_NOW, as a probe.
    #: The answer tells what is really missing (SACK) and clocks out the rest, one round trip at a
    #: time; resending everything outstanding would turn one stalled peer (or a paused server, whose
    #: timers all fire at once) into a storm of duplicates that keeps the stall going.
    rto_probe_frames: int = 16
    #: Bulk (file) frames in flight at most when `bulk_window` is None (21.7). The congestion window
    #: is loss-based: alone, a file would fill it and the switch's queue in front of it, and a chat
    #: line would wait behind that queue (at the 512-frame cap, 40 ms at 100 Mbit/s). 64 KB in flight
    #: keeps that wait to 5 ms at 100 Mbit/s and 0.5 ms at 1 Gbit/s, and moves 64 KB per round trip.
    max_bulk_in_flight: int = 64
    #: The delay-based limit on bulk frames in flight (bulk_window.py; docs/protocol.md 21.7): grows
    #: while the round trip stays near its minimum, shrinks when a queue builds, so a file fills the
    #: path without standing in front of chat. None: the fixed `max_bulk_in_flight` cap instead (the
    #: earlier behaviour, kept for comparison in benchmarks).
    bulk_window: BulkWindowConfig | None = field(default_factory=BulkWindowConfig)
    #: The congestion window and pacer (RFC 9002 section 7; docs/protocol.md 5.7).
    congestion: CongestionConfig = field(default_factory=CongestionConfig)


@dataclass(slots=True)
class RttEstimator:
    """RFC 6298 section 2: SRTT, RTTVAR and RTO (plus max_ack_delay, as RFC 9002's PTO)."""

    config: LinkConfig
    srtt: float | None = None
    rttvar: float = 0.0
    latest: float | None = None
    #: The smallest sample (RFC 9002 section 5.2): the path's own round trip, without the queues and
    #: the busy event loops that inflate SRTT. The pacer spreads a window over it.
    min_rtt: float | None = None

    @property
    def rto(self) -> float:
        cfg = self.config
        if self.srtt is None:
            return cfg.rto_initial_s
        # RFC 9002's PTO adds max_ack_delay: samples exclude the peer's ACK delay (see `_on_ack`), so
        # a frame whose ACK waits the full delay must not time out.
        rto = self.srtt + max(cfg.granularity_s, 4 * self.rttvar) + cfg.max_ack_delay_s
        return min(max(rto, cfg.rto_min_s), cfg.rto_max_s)

    def update(self, sample: float) -> None:
        """Feed one RTT measurement (seconds), taken only from a frame sent exactly once (Karn)."""
        sample = max(sample, 0.0)
        self.latest = sample
        if self.min_rtt is None or sample < self.min_rtt:
            self.min_rtt = sample
        if self.srtt is None:
            self.srtt = sample
            self.rttvar = sample / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - sample)
            self.srtt = 0.875 * self.srtt + 0.125 * sample


class _Sent:
    """One frame from `send` until it is acknowledged: queued, then in flight (and maybe resent).

    One object per frame for its whole life, header included, because the server makes one for every
    delivery: a frame plus a wrapper would double the allocations on the busiest path.
    """

    __slots__ = ("body", "bulk", "counted", "header", "retransmitted", "sent_at", "seq")

    def __init__(self, seq: int, header: bytes, body: bytes, bulk: bool = False) -> None:
        self.seq = seq
        self.bulk = bulk  # a file frame: resent after any lost chat frame
        self.header = header
        self.body = body
        self.sent_at = 0.0
        self.retransmitted = False
        #: In the congestion controller's bytes in flight: from its (re)transmission until it is
        #: acknowledged or declared lost by the packet rule.
        self.counted = False


@dataclass(slots=True)
class LinkStats:
    """Counters for logs and benchmarks."""

    frames_sent: int = 0
    frames_retransmitted: int = 0
    frames_received: int = 0
    duplicates_received: int = 0
    beyond_window_dropped: int = 0
    packets_sent: int = 0
    packets_received: int = 0


def _seq_of(sent: _Sent) -> int:
    return sent.seq


def _chat_first(sent: _Sent) -> tuple[bool, int]:
    return sent.bulk, sent.seq


class ReliableLink:
    """One direction pair of reliable frame delivery. See the module docstring for the rules.

    Input:  `send(kind, body)`, `receive_packet(data, now)`, `handle_timer(now)`.
    Output: `packets_to_send(now)`, `next_timer()`, and the frames returned by `receive_packet`.
    """

    # One per session on the server: slots keep a thousand idle sessions small.
    __slots__ = (
        "_ack_due", "_ack_eliciting", "_ack_now", "_ack_owed_since", "_ack_wanted", "_acked_sent_max",
        "_backoff", "_bulk", "_bulk_in_flight", "_bulk_limited", "_bulk_unasked", "_bulk_window",
        "_largest_acked", "_loss_deadline", "_lost", "_lost_run",
        "_next_seq", "_now",
        "_probing", "_queue", "_recv_buffer", "_recv_cum", "_rto_deadline", "_tlp_deadline", "_tlp_sent",
        "_unacked", "config",
        "congestion", "last_received_at", "last_sent_at", "rtt", "stats",
    )  # fmt: skip

    def __init__(self, config: LinkConfig | None = None) -> None:
        self.config = config or LinkConfig()
        self.rtt = RttEstimator(self.config)
        self.stats = LinkStats()
        self._next_seq = 1
        # A list, not a deque: it is usually empty, and an empty deque costs 760 bytes against 56;
        # a thousand idle sessions on a server each have one.
        self._queue: list[_Sent] = []
        # File frames (kind, body) waiting for the link to have nothing else to send; numbered on leaving.
        # None until the first one: most sessions never send a file.
        self._bulk: deque[tuple[int, bytes]] | None = None
        self._bulk_in_flight = 0  # bulk frames sent and not yet acknowledged
        # The delay-based bulk window, made with the first bulk frame (None: the fixed cap applies).
        self._bulk_window: BulkWindow | None = None
        self._bulk_limited = False  # the bulk window held a frame back since the last ACK
        self._bulk_unasked = 0  # bulk frames sent since the last packet flagged ACK_NOW
        self._unacked: OrderedDict[int, _Sent] = OrderedDict()  # by seq: popped from the front
        self._lost: set[int] = set()
        self._largest_acked = 0
        self._backoff = 0
        self._rto_deadline: float | None = None
        self._loss_deadline: float | None = None
        # Tail loss probes (docs/protocol.md 5.7): up to `TLP_MAX_PROBES` early probes per
        # acknowledgement, each after twice the previous wait, so a lost last packet (or its ACK) of a
        # small window costs a few round trips instead of `rto_min_s` or more.
        self._tlp_deadline: float | None = None
        self._tlp_sent = 0
        self._recv_cum = 0
        self._recv_buffer: dict[int, Frame] = {}
        self._ack_wanted = False
        self._ack_due: float | None = None
        self._ack_owed_since = 0.0
        self._ack_eliciting = 0
        self._ack_now = False  # flag the next packets ACK_NOW (a timeout probe, a keepalive)
        self.last_received_at: float | None = None
        self.last_sent_at: float | None = None
        self.congestion = CongestionController(self.config.congestion)
        self._now = 0.0  # the latest time given to any input: `wants_to_send` asks the pacer about it
        self._probing = False  # the frames in `_lost` are a timeout probe: not held back
        self._acked_sent_max = float("-inf")  # latest send time of any acknowledged transmission
        # (first, last) send times of transmissions that timed out since then: persistent congestion
        # once they span its duration (RFC 9002 section 7.6).
        self._lost_run: tuple[float, float] | None = None

    # ------------------------------------------------------------ sending

    def send(self, kind: int, body: bytes, *, bulk: bool = False) -> int:
        """Queue one reliable frame and return its sequence number.

        A `bulk` frame (FILE_CHUNK, FILE_DATA) waits in its own queue and leaves only when no other frame
        is waiting (docs/protocol.md 21.7). It is numbered when it leaves, so for it `send` returns 0;
        `bulk_queued` and `bulk_in_flight` tell a sender how far its file has got.

        Raises:
            ValueError: the body cannot fit one packet; callers split text long before this.
        """
        if len(body) > MAX_FRAME_BODY_BYTES:
            raise ValueError(f"frame body of {len(body)} bytes exceeds {MAX_FRAME_BODY_BYTES}")
        if bulk:
            if self._bulk is None:
                self._bulk = deque()
                if self.config.bulk_window is not None and self._bulk_window is None:
                    self._bulk_window = BulkWindow(self.config.bulk_window)
            self._bulk.append((kind, body))
            return 0
        seq = self._next_seq
        self._next_seq += 1
        self._queue.append(_Sent(seq, encode_frame_header(kind, seq, len(body)), body))
        return seq

    def request_ack_now(self) -> None:
        """Flag the next packet that carries frames ACK_NOW: its peer acknowledges it at once. For a
        keepalive, whose only purpose is the answer: a delayed ACK would cost the peer a timer and a
        wake-up of its own for every keepalive of every client."""
        self._ack_now = True

    def acked(self, seq: int) -> bool:
        """True once frame `seq` (a number `send` returned) has been acknowledged by the peer: the
        point where a sender may forget what the frame carried (the server's held private messages)."""
        if seq >= self._next_seq or seq in self._unacked:
            return False
        return not (self._queue and self._queue[0].seq <= seq)  # the queue holds new frames in order

    @property
    def in_flight(self) -> int:
        return len(self._unacked)

    @property
    def bulk_queued(self) -> int:
        """Bulk frames given to `send` and not sent yet."""
        return len(self._bulk) if self._bulk else 0

    @property
    def bulk_in_flight(self) -> int:
        """Bulk frames sent and not acknowledged yet."""
        return self._bulk_in_flight

    @property
    def bulk_limit(self) -> int:
        """Bulk frames that may be in flight now: the delay-based window's, or the fixed cap."""
        bw = self._bulk_window
        return bw.limit if bw is not None else self.config.max_bulk_in_flight

    @property
    def bulk_window(self) -> BulkWindow | None:
        """The delay-based bulk window, once a bulk frame was sent with it configured."""
        return self._bulk_window

    @property
    def bulk_pending(self) -> int:
        """Bulk frames not yet acknowledged, sent or not: what file flow control (21.5) counts."""
        return self._bulk_in_flight + self.bulk_queued

    @property
    def backlog(self) -> int:
        """Frames not yet acknowledged, sent or not: what a slow peer costs us in memory."""
        return len(self._unacked) + len(self._queue) + self.bulk_queued

    @property
    def idle(self) -> bool:
        return not self._unacked and not self._queue and not self._bulk

    def oldest_unacked_sent_at(self) -> float | None:
        """When the oldest outstanding frame was (last) sent: how long the peer has been silent to us."""
        for sent in self._unacked.values():
            return sent.sent_at
        return None

    def packets_to_send(self, now: float) -> list[bytes]:
        """Everything due now: an ACK if one is owed, lost frames, then new frames while the window allows.

        Frames are packed several to a packet (one datagram, one encryption, one system call for many
        messages to the same peer), and every packet carries the current ACK. Lost frames and new
        ones leave while the congestion window and the pacer allow (a timeout probe always leaves);
        what they hold back stays queued, in order.
        """
        self._now = now
        cc = self.congestion
        sendable = self._new_sendable()
        ack_due = self._ack_wanted and self._ack_due is not None and now >= self._ack_due
        if not (sendable or self._lost or ack_due):
            # The common call after a received datagram whose ACK may wait: nothing to build.
            if self._unacked and self._rto_deadline is None:
                self._arm_rto(now)
            return []
        cc.refill_pacer(self.rtt.min_rtt, now)
        pacer = cc.pacer
        batch: list[_Sent] = []  # lost frames first, then new ones while the windows allow
        window_full = False  # the congestion window (not the pacer) held a frame back
        if self._lost:
            probing, self._probing = self._probing, False
            held: set[int] = set()
            resent = 0
            lost = [sent for seq in self._lost if (sent := self._unacked.get(seq)) is not None]
            lost.sort(key=_chat_first if self._bulk_in_flight else _seq_of)  # chat before files
            for sent in lost:
                seq = sent.seq
                if not sent.counted:  # declared lost, out of flight: back in, if the windows allow
                    if not probing and not (cc.bytes_in_flight < cc.cwnd and pacer.budget > 0):
                        window_full = window_full or cc.bytes_in_flight >= cc.cwnd
                        held.add(seq)
                        continue
                    sent.counted = True
                    cc.on_sent(FRAME_HEADER_BYTES + len(sent.body))
                # else: a timeout probe of a frame still counted in flight: it leaves regardless
                sent.retransmitted = True
                batch.append(sent)
                resent += 1
            self.stats.frames_retransmitted += resent
            self._lost = held
            if held:
                cc.on_blocked()
        if sendable and not self._lost:
            queue, unacked = self._queue, self._unacked
            limit = min(self.config.max_in_flight - len(unacked), len(queue))
            in_flight, cwnd, budget = cc.bytes_in_flight, cc.cwnd, pacer.budget
            taken = 0
            while taken < limit and in_flight < cwnd and budget > 0:
                size = FRAME_HEADER_BYTES + len(queue[taken].body)
                in_flight += size
                budget -= size
                taken += 1
            if taken:  # cc.on_sent, inlined: this is the path of every message the server fans out
                cc.bytes_in_flight, pacer.budget = in_flight, budget
                if in_flight >= cwnd - cc.config.max_datagram_bytes:
                    cc.window_limited = True
            if taken >= len(queue):
                fresh, self._queue = queue, []
            else:
                fresh = queue[:taken]
                del queue[:taken]
            for sent in fresh:
                sent.counted = True
                unacked[sent.seq] = sent
            bulk = self._bulk
            if bulk and not self._queue:
                # Nothing else waits: file frames fill what the windows have left, numbered now.
                bulk_room = self.bulk_limit - self._bulk_in_flight
                room = min(self.config.max_in_flight - len(unacked), bulk_room)
                seq = self._next_seq
                while bulk and room > 0 and in_flight < cwnd and budget > 0:
                    kind, body = bulk.popleft()
                    size = FRAME_HEADER_BYTES + len(body)
                    in_flight += size
                    budget -= size
                    room -= 1
                    sent = _Sent(seq, encode_frame_header(kind, seq, len(body)), body, True)
                    sent.counted = True
                    unacked[seq] = sent
                    fresh.append(sent)
                    seq += 1
                    self._bulk_in_flight += 1
                self._next_seq = seq
                cc.bytes_in_flight, pacer.budget = in_flight, budget
                if in_flight >= cwnd - cc.config.max_datagram_bytes:
                    cc.window_limited = True
                if bulk and self._bulk_window is not None and self._bulk_in_flight >= self.bulk_limit:
                    # The bulk window held file frames back: it may grow on the next ACK, and only
                    # an ACK lets more go, so the last packet asks for it at once.
                    self._bulk_limited = True
                    window_full = True
            if (self._queue or bulk) and (in_flight >= cwnd or budget <= 0):
                window_full = window_full or in_flight >= cwnd
                cc.on_blocked()
            batch.extend(fresh)
            self.stats.frames_sent += len(fresh)
        elif sendable:
            cc.on_blocked()  # retransmissions first: new frames wait behind the held ones
        flags = FLAG_ACK_NOW if self._ack_now else 0
        ack_block = b""
        if self._ack_wanted or self._recv_cum or self._recv_buffer:
            flags |= FLAG_ACK
            ack_block = encode_ack(self._current_ack(now))
        ack_bytes = bytes((flags,)) + ack_block
        budget_bytes = MAX_PACKET_BYTES - len(ack_bytes)
        packets: list[bytes] = []
        parts: list[bytes] = [ack_bytes]
        used = 0
        # While the delay-based bulk window is what holds the file back, file frames ask for an ACK
        # every eighth of the window: its samples then come without the peer's ACK delay, and ACKs
        # spread over the round trip clock the file out smoothly instead of a window's worth at once.
        # (When the congestion window is the limit, it asks for its own ACKs: nothing changes.)
        ask_every = self._bulk_ack_every() if self._bulk_limited else 0
        for sent in batch:
            sent.sent_at = now
            size = len(sent.header) + len(sent.body)
            if used + size > budget_bytes:
                if ask_every and self._bulk_unasked >= ask_every:
                    parts[0] = bytes((flags | FLAG_ACK_NOW,)) + ack_block
                    self._bulk_unasked = 0
                packets.append(b"".join(parts))
                parts, used = [ack_bytes], 0
            parts.append(sent.header)
            parts.append(sent.body)
            used += size
            if ask_every and sent.bulk:
                self._bulk_unasked += 1
        if used:
            if window_full or (ask_every and self._bulk_unasked >= ask_every):
                # The window is full: only an ACK lets more go, so ask for it now rather than after
                # the peer's delayed-ACK timer (ACK clocking; the flag is free, the bit exists).
                parts[0] = bytes((flags | FLAG_ACK_NOW,)) + ack_block
                self._bulk_unasked = 0
            packets.append(b"".join(parts))
        elif ack_due and flags & FLAG_ACK:
            packets.append(b"".join(parts))
        if used:
            self._ack_now = False
            delay = self._tlp_delay(bool(parts[0][0] & FLAG_ACK_NOW))
            if delay is not None:
                self._tlp_deadline = now + delay
        if packets:
            self._ack_wanted = False
            self._ack_due = None
            self._ack_eliciting = 0
            self.last_sent_at = now
            self.stats.packets_sent += len(packets)
        if self._unacked and self._rto_deadline is None:
            self._arm_rto(now)
        return packets

    def _arm_rto(self, now: float) -> None:
        timeout = min(self.rtt.rto * (2**self._backoff), self.config.rto_max_s)
        oldest = self.oldest_unacked_sent_at()
        self._rto_deadline = None if oldest is None else max(oldest + timeout, now)

    # ------------------------------------------------------------ receiving

    def receive_packet(self, data: bytes, now: float) -> list[Frame]:
        """Take one decrypted packet; return the frames that became deliverable, in order.

        Raises:
            DecodeError: the packet does not parse. Nothing in the link has changed in that case.
        """
        packet = decode_packet(data)
        if packet.ack is not None:
            top = packet.ack.ranges[-1][1] if packet.ack.ranges else packet.ack.cumulative
            if top >= self._next_seq:  # checked before anything changes: a bad packet changes nothing
                raise DecodeError("ACK for a frame never sent")
        self.last_received_at = now
        self.stats.packets_received += 1
        if packet.ack is not None:
            self._on_ack(packet.ack, now)
        delivered: list[Frame] = []
        # A gap was open (whatever arrives, the sender wants to know), or the sender is probing.
        urgent = packet.ack_now or bool(self._recv_buffer)
        for frame in packet.frames:
            if frame.seq <= self._recv_cum or frame.seq in self._recv_buffer:
                self.stats.duplicates_received += 1
                urgent = True  # our ACK was lost: say it again now
                continue
            if frame.seq > self._recv_cum + self.config.receive_window:
                self.stats.beyond_window_dropped += 1
                continue
            self._recv_buffer[frame.seq] = frame
        while (nxt := self._recv_buffer.pop(self._recv_cum + 1, None)) is not None:
            self._recv_cum += 1
            delivered.append(nxt)
        if delivered and not self._recv_buffer:
            self._recv_buffer = {}  # as for `_unacked`: do not keep the size of a past burst
        if packet.frames:
            if not self._ack_wanted:
                self._ack_wanted = True
                self._ack_owed_since = now
            self._ack_eliciting += 1
            if urgent or self._recv_buffer or self._ack_eliciting >= self.config.ack_every:
                # A gap (open or just closed), a duplicate, or enough packets: acknowledge at once.
                self._ack_due = now
            elif self._ack_due is None:
                self._ack_due = now + self.config.max_ack_delay_s
        self.stats.frames_received += len(delivered)
        return delivered

    def _current_ack(self, now: float) -> Ack:
        ranges: list[tuple[int, int]] = []
        if self._recv_buffer:
            for seq in sorted(self._recv_buffer):
                if ranges and seq == ranges[-1][1] + 1:
                    ranges[-1] = (ranges[-1][0], seq)
                else:
                    if len(ranges) == MAX_ACK_RANGES:
                        break
                    ranges.append((seq, seq))
        delay_ms = int((now - self._ack_owed_since) * 1000) if self._ack_wanted else 0
        return Ack(self._recv_cum, tuple(ranges), max(delay_ms, 0))

    def _on_ack(self, ack: Ack, now: float) -> None:
        if ack.cumulative >= self._next_seq:
            raise DecodeError("ACK for a frame never sent")
        newly: list[_Sent] = []
        unacked = self._unacked
        while unacked and next(iter(unacked)) <= ack.cumulative:
            newly.append(unacked.popitem(last=False)[1])
        for first, last in ack.ranges:
            if last >= self._next_seq:
                raise DecodeError("ACK range for a frame never sent")
            if last - first < 64:
                seqs: list[int] | range = range(first, last + 1)
            else:
                seqs = [s for s in self._unacked if first <= s <= last]
            for seq in seqs:
                sent = self._unacked.pop(seq, None)
                if sent is not None:
                    newly.append(sent)
        if not newly:
            return
        bulk_acked = sum(1 for sent in newly if sent.bulk) if self._bulk_in_flight else 0
        self._bulk_in_flight -= bulk_acked
        self._on_acked_congestion(newly, now)
        if not unacked:
            # Dicts never shrink: after a burst (a thousand JOINEDs while a room fills up) an
            # emptied table would keep its size for the life of the session. Start a small one.
            self._unacked = OrderedDict()
            # Nothing is outstanding, so nothing is in flight: a count that drifted (it never should)
            # must not leave the window closed for good.
            self.congestion.bytes_in_flight = 0
        largest = max(newly, key=_seq_of)
        if largest.seq > self._largest_acked:
            self._largest_acked = largest.seq
            if not largest.retransmitted:
                self.rtt.update(now - largest.sent_at - ack.delay_ms / 1000)
                if self._bulk_window is not None and ack.delay_ms == 0:
                    # An ACK sent at once: the raw round trip, queues included, is what the bulk
                    # window measures (a delayed ACK's would be the peer's timer, not the path).
                    self._bulk_window.on_rtt_sample(now - largest.sent_at, now)
        if bulk_acked and self._bulk_window is not None:
            self._bulk_window.on_acked(bulk_acked, self._bulk_limited)
            self._bulk_limited = False
        self._backoff = 0
        self._detect_lost(now)
        self._rto_deadline = None
        self._tlp_sent = 0
        self._tlp_deadline = None
        if self._unacked:
            self._arm_rto(now)
            delay = self._tlp_delay(False)
            if delay is not None and self.last_sent_at is not None:
                self._tlp_deadline = max(self.last_sent_at + delay, now)

    def _on_acked_congestion(self, newly: list[_Sent], now: float) -> None:
        """Tell the controller how many counted bytes came back, and how many of them were sent after
        its recovery period began (only those grow the window)."""
        recovery_start = self.congestion.recovery_start
        acked = growth = 0
        latest = self._acked_sent_max
        for sent in newly:
            if sent.sent_at > latest:
                latest = sent.sent_at
            if sent.counted:
                size = FRAME_HEADER_BYTES + len(sent.body)
                acked += size
                if sent.sent_at > recovery_start:
                    growth += size
        self._acked_sent_max = latest
        if self._lost_run is not None and latest >= self._lost_run[0]:
            self._lost_run = None  # something sent during the run came back: the path works
        if acked:
            self.congestion.on_acked(acked, growth, now)

    def _detect_lost(self, now: float) -> None:
        """RFC 9002 section 6.1's time threshold for every frame below the largest acknowledged; arms
        the loss timer for those not yet old enough."""
        srtt = self.rtt.srtt if self.rtt.srtt is not None else self.config.rto_initial_s
        delay = max(TIME_THRESHOLD * max(srtt, self.rtt.latest or 0.0), self.config.granularity_s)
        threshold = self._largest_acked - 1
        self._loss_deadline = None
        lost_bytes = 0
        lost_sent_at = float("-inf")
        for seq, sent in self._unacked.items():
            if seq > threshold:
                break
            if seq in self._lost:
                continue
            if sent.sent_at + delay <= now:
                self._lost.add(seq)
                if sent.counted:
                    sent.counted = False
                    lost_bytes += FRAME_HEADER_BYTES + len(sent.body)
                    lost_sent_at = max(lost_sent_at, sent.sent_at)
            elif self._loss_deadline is None or sent.sent_at + delay < self._loss_deadline:
                self._loss_deadline = sent.sent_at + delay
        if lost_bytes:
            self.congestion.on_lost(lost_bytes, lost_sent_at, now)

    # ------------------------------------------------------------ timers

    def next_timer(self) -> float | None:
        """When `handle_timer` (then `packets_to_send`) must run next: a delayed ACK, a loss or a
        retransmission deadline, or the moment the pacer lets held-back frames go, if any."""
        deadline = self._rto_deadline
        if self._tlp_deadline is not None and (deadline is None or self._tlp_deadline < deadline):
            deadline = self._tlp_deadline
        paced = None if self.congestion.pacer.budget > 0 else self._paced_until()
        for other in (self._loss_deadline, self._ack_due if self._ack_wanted else None, paced):
            if other is not None and (deadline is None or other < deadline):
                deadline = other
        return deadline

    def _new_sendable(self) -> bool:
        """New frames (chat or bulk) wait and the in-flight cap would let one go."""
        if len(self._unacked) >= self.config.max_in_flight:
            return False
        return bool(self._queue) or (
            bool(self._bulk) and self._bulk_in_flight < self.bulk_limit
        )

    def _bulk_ack_every(self) -> int:
        """File frames between two packets flagged ACK_NOW: an eighth of the bulk window, at least 2.
        (A quarter left bursts of a quarter window at the bottleneck after each ACK: at 100 Mbit/s in
        the model, chat p99 1.3 ms against 0.9.)"""
        return max(2, self.bulk_limit // 8)

    def _paced_until(self) -> float | None:
        """When the pacer releases frames that only it holds back (the window would let them go)."""
        cc = self.congestion
        if cc.pacer.budget > 0 or cc.bytes_in_flight >= cc.cwnd:
            return None
        if not (self._lost or self._new_sendable()):
            return None
        return cc.pacer_release_at(self.rtt.min_rtt)

    def handle_timer(self, now: float) -> None:
        """Declare losses whose time has come; on a retransmission timeout resend and back off.
        The pacer needs nothing here: once its deadline passed, `wants_to_send` says so."""
        self._now = now
        if self._loss_deadline is not None and now >= self._loss_deadline:
            self._detect_lost(now)
        if self._tlp_deadline is not None and now >= self._tlp_deadline and (
            self._rto_deadline is None or now < self._rto_deadline
        ):
            self._tail_loss_probe()
        if self._rto_deadline is None or now < self._rto_deadline:
            return
        self._tlp_deadline = None
        timeout = min(self.rtt.rto * (2**self._backoff), self.config.rto_max_s)
        probe = self.config.rto_probe_frames
        for seq, sent in self._unacked.items():  # oldest first
            if len(self._lost) >= probe:
                break
            if sent.sent_at + timeout <= now + 1e-9:
                self._lost.add(seq)
        self._ack_now = True
        if self._unacked and not self._lost:
            # The estimate grew since the timer was armed: still resend the oldest (RFC 6298 5.4).
            self._lost.add(next(iter(self._unacked)))
        self._on_timeout_congestion(now)
        self._backoff = min(self._backoff + 1, 16)
        self._rto_deadline = (
            None if not self._unacked else now + min(self.rtt.rto * (2**self._backoff), self.config.rto_max_s)
        )

    def _tlp_delay(self, ack_now: bool) -> float | None:
        """How long after the last frames left a tail loss probe goes: two smoothed round trips (RFC
        8985's PTO), doubled per probe already sent, plus the peer's ACK delay (and one tick of its
        timer) unless the last packet asked for its ACK at once. None: no probe (none left, or no
        RTT sample yet to time one by)."""
        srtt = self.rtt.srtt
        if srtt is None or self._tlp_sent >= TLP_MAX_PROBES:
            return None
        cfg = self.config
        delay = 2 * srtt + max(4 * self.rtt.rttvar, cfg.granularity_s)
        scale: float = 2.0**self._tlp_sent
        # Without ACK_NOW the peer may wait max_ack_delay, and its timer may fire a tick (G) late:
        # a lone chat line's ACK must come back before its probe would leave.
        return delay * scale + (0.0 if ack_now else cfg.max_ack_delay_s + cfg.granularity_s)

    def _tail_loss_probe(self) -> None:
        """Nothing came back for the last frames sent: resend the newest one, flagged ACK_NOW, once.
        Its answer (a SACK) tells the time threshold what is missing, where the retransmission
        timer would have waited `rto_min_s`. Unlike a timeout it neither backs off nor counts towards
        persistent congestion: the window is untouched, and the probe is one frame."""
        self._tlp_deadline = None
        self._tlp_sent += 1
        if not self._unacked:
            return
        if not self._lost:
            self._lost.add(next(reversed(self._unacked)))
        # else: frames declared lost wait for a window that only ACKs would open: they are the probe
        self._ack_now = True
        self._probing = True

    def _on_timeout_congestion(self, now: float) -> None:
        """The transmissions in `_lost` timed out and leave again as a probe. As a PTO in RFC 9002, a
        timeout alone does not shrink the window: on a LAN most timeouts are a peer's event loop that
        paused, not a full queue, and a chat that halves its window at every pause would crawl after
        one. But unlike QUIC the link resends the same frame, so no later ACK ever declares the timed
        out transmission lost: the timeout is where the link learns of it for persistent congestion.
        When timed-out transmissions sent after the last one acknowledged span its duration, the
        window collapses (RFC 9002 section 7.6)."""
        latest_acked = self._acked_sent_max
        first = last = None
        for seq in self._lost:
            sent = self._unacked.get(seq)
            if sent is None or sent.sent_at <= latest_acked:
                continue
            if first is None or sent.sent_at < first:
                first = sent.sent_at
            if last is None or sent.sent_at > last:
                last = sent.sent_at
        self._probing = True
        if first is None or last is None:
            return
        cc = self.congestion
        run = self._lost_run
        self._lost_run = run = (first, last) if run is None else (min(run[0], first), max(run[1], last))
        srtt = self.rtt.srtt
        if srtt is not None:
            cfg = self.config
            duration = persistent_congestion_duration(srtt, self.rtt.rttvar, cfg.granularity_s,
                                                      cfg.max_ack_delay_s)
            if run[1] - run[0] > duration:
                cc.on_persistent_congestion(now)
                self._lost_run = None
                self.rtt.min_rtt = self.rtt.latest  # the path may have changed (RFC 9002 5.2)

    @property
    def wants_to_send(self) -> bool:
        """True when `packets_to_send` would produce something: an owed ACK, a loss or queued frames
        that the congestion window and the pacer let go (a timeout probe always goes)."""
        if self._ack_wanted or self._probing:
            return bool(self._ack_wanted or self._lost)
        if not (self._lost or self._new_sendable()):
            return False
        cc = self.congestion
        if cc.bytes_in_flight >= cc.cwnd:
            return False
        cc.refill_pacer(self.rtt.min_rtt, self._now)
        return cc.pacer.budget > 0
