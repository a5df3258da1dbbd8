"""Chat before files on one link (docs/protocol.md 21.7): the bulk queue of the reliable link."""

from __future__ import annotations

from labchat.protocol.bulk_window import BulkWindowConfig
from labchat.protocol.congestion import CongestionConfig
from labchat.protocol.reliability import LinkConfig, ReliableLink
from labchat.protocol.wire import decode_packet

from .test_reliability import LossyPipe

CHAT = 2
FILE = 52
CHUNK = b"x" * 1000


def _frames(packets: list[bytes]) -> list[tuple[int, bytes]]:
    return [(f.kind, f.body) for p in packets for f in decode_packet(p).frames]


def _ack_all(sender: ReliableLink, receiver: ReliableLink, packets: list[bytes], now: float) -> None:
    """Deliver `packets` to `receiver` and its ACK back to `sender`."""
    for p in packets:
        receiver.receive_packet(p, now)
    for p in receiver.packets_to_send(now + 1.0):  # past the delayed-ACK timer
        sender.receive_packet(p, now + 0.002)


def test_chat_queued_behind_a_thousand_bulk_frames_goes_out_in_the_next_packet() -> None:
    link = ReliableLink(LinkConfig())
    for i in range(1000):
        assert link.send(FILE, CHUNK + str(i).encode(), bulk=True) == 0
    seq = link.send(CHAT, b"hello")
    assert seq == 1  # numbered before every file frame still queued
    packets = link.packets_to_send(0.0)
    assert _frames(packets)[0] == (CHAT, b"hello")
    assert link.bulk_in_flight > 0 and link.bulk_queued == 1000 - link.bulk_in_flight


def test_chat_sent_while_the_window_is_full_of_bulk_goes_first_after_the_ack() -> None:
    a, b = ReliableLink(), ReliableLink()
    for i in range(1000):
        a.send(FILE, CHUNK + str(i).encode(), bulk=True)
    now = 0.0
    first = a.packets_to_send(now)
    assert first and not a.wants_to_send  # the window is full of file frames
    a.send(CHAT, b"during the transfer")
    now += 0.01
    _ack_all(a, b, first, now)
    now += 0.01
    nxt = a.packets_to_send(now)
    assert _frames(nxt)[0] == (CHAT, b"during the transfer")


def test_bulk_makes_progress_and_keeps_its_order_while_chat_is_idle() -> None:
    pipe = LossyPipe(loss=0.05, seed=7)
    bodies = [CHUNK + str(i).encode() for i in range(300)]
    for body in bodies:
        pipe.a.send(FILE, body, bulk=True)
    pipe.run()
    assert pipe.got["b"] == bodies
    assert pipe.a.bulk_pending == 0 and pipe.a.idle


def test_bulk_never_starves_chat_and_chat_never_starves_bulk() -> None:
    """A steady chat stream beside a file: every chat line arrives within a few round trips of being
    sent, and the file still finishes."""
    pipe = LossyPipe(loss=0.02, seed=3)
    files = [CHUNK + str(i).encode() for i in range(2000)]
    for body in files:
        pipe.a.send(FILE, body, bulk=True)
    sent_at: dict[bytes, float] = {}
    waits: list[float] = []
    seen = 0
    next_chat = 0.0
    i = 0
    for name, link in (("a", pipe.a), ("b", pipe.b)):
        pipe._ship(name, link.packets_to_send(pipe.now))
    while pipe.now < 60.0 and (not pipe.a.idle or not pipe.b.idle or pipe.in_flight):
        if pipe.now >= next_chat and i < 100:
            body = f"chat {i}".encode()
            sent_at[body] = pipe.now
            pipe.a.send(CHAT, body)
            pipe._ship("a", pipe.a.packets_to_send(pipe.now))
            i += 1
            next_chat = pipe.now + 0.005
        pipe.step()
        for body in pipe.got["b"][seen:]:
            if body in sent_at:
                waits.append(pipe.now - sent_at[body])
        seen = len(pipe.got["b"])
    got = pipe.got["b"]
    assert [b for b in got if b not in sent_at] == files  # file frames in order, all of them
    assert [b for b in got if b in sent_at] == list(sent_at)  # chat in order, all of it
    assert len(waits) == len(sent_at) >= 20  # the file finished with chat going on beside it
    waits.sort()
    # The median line waits for no file frame already queued (2000 of them, seconds of traffic).
    assert waits[len(waits) // 2] < 0.05


def test_lost_chat_frame_is_resent_before_a_lost_file_frame() -> None:
    a, b = ReliableLink(), ReliableLink()
    a.send(FILE, CHUNK, bulk=True)
    first = a.packets_to_send(0.0)  # file frame seq 1: lost
    a.send(CHAT, b"line")
    second = a.packets_to_send(0.001)  # chat seq 2: lost
    assert first and second
    deadline = a.next_timer()
    assert deadline is not None
    now = deadline + 0.01  # both have timed out
    a.handle_timer(now)
    resent = _frames(a.packets_to_send(now))
    assert resent[0] == (CHAT, b"line")
    assert (FILE, CHUNK) in resent
    del b


def test_bulk_counters_fall_as_acks_arrive() -> None:
    a, b = ReliableLink(), ReliableLink()
    for _ in range(10):
        a.send(FILE, CHUNK, bulk=True)
    assert a.bulk_queued == 10 and a.bulk_pending == 10 and a.backlog == 10 and not a.idle
    packets = a.packets_to_send(0.0)
    assert a.bulk_in_flight == 10 and a.bulk_queued == 0
    _ack_all(a, b, packets, 0.001)
    assert a.bulk_in_flight == 0 and a.bulk_pending == 0 and a.idle


def test_bulk_in_flight_is_capped_so_a_file_cannot_fill_the_path_queue() -> None:
    a = ReliableLink(LinkConfig(max_bulk_in_flight=4, bulk_window=None))  # the fixed cap
    for _ in range(10):
        a.send(FILE, CHUNK, bulk=True)
    a.packets_to_send(0.0)
    assert a.bulk_in_flight == 4 and a.bulk_queued == 6
    assert not a.wants_to_send  # waits for an ACK, not for a timer
    a.send(CHAT, b"still goes")
    assert a.wants_to_send
    assert _frames(a.packets_to_send(0.001)) == [(CHAT, b"still goes")]


def test_the_delay_based_window_holds_file_frames_but_never_chat() -> None:
    # The default bulk window (bulk_window.py), under a congestion window that is not the limit.
    a = ReliableLink(LinkConfig(congestion=CongestionConfig(initial_window_packets=40,
                                                                pacing_burst_packets=40)))
    for _ in range(100):
        a.send(FILE, CHUNK, bulk=True)
    packets = a.packets_to_send(0.0)
    limit = BulkWindowConfig().initial_frames
    assert a.bulk_limit == limit and a.bulk_in_flight == limit
    assert not a.wants_to_send  # the file waits for an ACK...
    # ...and asks for it: every eighth of the window, and the packet that fills it, flag ACK_NOW.
    flagged = [i for i, p in enumerate(packets) if decode_packet(p).ack_now]
    assert flagged == [i for i in range(limit) if (i + 1) % (limit // 8) == 0]
    for i in range(20):
        a.send(CHAT, b"line %d" % i)
    assert a.wants_to_send
    assert _frames(a.packets_to_send(0.001)) == [(CHAT, b"line %d" % i) for i in range(20)]
    assert a.bulk_in_flight == limit


def test_the_bulk_window_opens_on_a_path_without_a_queue() -> None:
    """Over the lossless pipe (a constant round trip, no queue) the window leaves its start, so a
    file gets past the fixed cap of 64 frames in flight."""
    pipe = LossyPipe(loss=0.0, seed=1)
    for i in range(3000):
        pipe.a.send(FILE, CHUNK + str(i).encode(), bulk=True)
    pipe._ship("a", pipe.a.packets_to_send(pipe.now))
    most = 0
    while pipe.a.bulk_pending and pipe.now < 30.0:
        pipe.step()
        most = max(most, pipe.a.bulk_in_flight)
    assert pipe.a.bulk_pending == 0 and len(pipe.got["b"]) == 3000
    window = pipe.a.bulk_window
    assert window is not None and window.limit > 64 and most > 64
