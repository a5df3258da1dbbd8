"""File transfers of a client (docs/protocol.md 21), sans-I/O: a `ClientConnection` against a scripted
server that answers exactly as section 21 says, with a hand-moved clock."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.errors import ErrorCode, LocalProtocolError
from labchat.protocol.transfer import PROGRESS_EVERY_S, Progress, State, Transfers

from .scripted_server import ScriptedServer, logged_in

FILES = m.CAP_ROOMS | m.CAP_LONG_MESSAGES | m.CAP_FILES
DATA = bytes(range(256)) * 40  # 10 240 bytes: eleven chunks
DIGEST = hashlib.sha256(DATA).digest()


def files_server() -> ScriptedServer:
    return logged_in(("lobby",), flags=FILES)


def pump(server: ScriptedServer, data: bytes = DATA) -> None:
    """The owner's part: read what the uploads want from `data`, then let the link carry it."""
    for _ in range(1000):
        wants = list(server.conn.files.wants())
        for local_id, offset, length in wants:
            server.conn.files.feed(local_id, offset, data[offset : offset + length])
        buffered = any(up.buffer for up in server.conn.files.uploads.values())
        if not wants and not buffered:
            break
        server.advance(0.03)  # delayed ACKs fire: the link drains, more chunks go
    server.exchange()


def chunks_sent(server: ScriptedServer) -> bytes:
    """The upload as the server would assemble it: each chunk at its offset, in order."""
    out = bytearray()
    for chunk in server.sent(m.FileChunk):
        assert isinstance(chunk, m.FileChunk)
        if chunk.offset == len(out):
            out += chunk.data
    return bytes(out)


def offer(server: ScriptedServer, data: bytes = DATA) -> tuple[int, m.FileOffer]:
    local_id = server.conn.offer_file("lab3.py", len(data), hashlib.sha256(data).digest(), server.now,
                                      mime="text/x-python")  # fmt: skip
    server.exchange()
    sent = server.last(m.FileOffer)
    assert isinstance(sent, m.FileOffer)
    return local_id, sent


def offered(file_id: int = 7, data: bytes = DATA, **kw: object) -> m.FileOffered:
    fields: dict[object, object] = dict(
        file_id=file_id, room="lobby", to="", sender="bob", name="lab3.py", size=len(data),
        sha256=hashlib.sha256(data).digest(), mime="text/x-python", ts_ms=1_700_000_000_000,
    )  # fmt: skip
    fields.update(kw)
    return m.FileOffered(**fields)  # type: ignore[arg-type]


def stream(
    server: ScriptedServer, file_id: int, data: bytes, start: int = 0, stop: int | None = None
) -> None:
    stop = len(data) if stop is None else stop
    for offset in range(start, stop, m.MAX_CHUNK_BYTES):
        server.send(m.FileData(file_id, offset, data[offset : min(offset + m.MAX_CHUNK_BYTES, stop)]))


def received(server: ScriptedServer) -> bytes:
    out = bytearray()
    for e in server.events(ev.FileChunkReceived):
        assert isinstance(e, ev.FileChunkReceived) and e.offset == len(out)
        out += e.data
    return bytes(out)


# ---------------------------------------------------------------- uploads


def test_login_announces_files_and_an_offer_goes_out_with_name_size_and_digest() -> None:
    server = files_server()
    login = server.last(m.Login)
    assert isinstance(login, m.Login) and login.flags & m.CAP_FILES
    _, sent = offer(server)
    assert (sent.room, sent.to, sent.name, sent.size, sent.sha256) == (
        "lobby",
        "",
        "lab3.py",
        len(DATA),
        DIGEST,
    )
    assert sent.mime == "text/x-python" and not sent.flags
    assert not server.sent(m.FileChunk)  # nothing before the server's FILE_STATE


def test_accepted_upload_streams_every_chunk_in_order_and_ends_stored() -> None:
    server = files_server()
    local_id, sent = offer(server)
    server.send(m.FileState(99, sent.request_id, 0))
    pump(server)
    assert chunks_sent(server) == DATA
    assert all(c.file_id == 99 for c in server.sent(m.FileChunk))  # type: ignore[attr-defined]
    server.send(m.FileState(99, 0, len(DATA), 0, "stored"))
    [done] = server.events(ev.FileDone)
    assert done == ev.FileDone(local_id, "lab3.py", "up", None, DIGEST.hex())
    progress = server.events(ev.FileProgress)
    assert progress and progress[-1].done == len(DATA)  # type: ignore[attr-defined]
    assert server.conn.upload(local_id).state is State.STORED  # type: ignore[union-attr]


def test_chunks_go_as_the_link_drains_never_more_than_the_window() -> None:
    server = files_server()
    big = os.urandom(200 * m.MAX_CHUNK_BYTES)
    _, sent = offer(server, big)
    server.send(m.FileState(5, sent.request_id, 0))
    for local, offset, length in server.conn.files.wants():
        server.conn.files.feed(local, offset, big[offset : offset + length])
    datagrams = server.conn.datagrams_to_send(server.now)  # nothing acknowledged yet
    assert server.conn._link.bulk_pending <= server.conn.config.file_window
    for data in datagrams:
        server._receive(data)
    pump(server, big)
    assert chunks_sent(server) == big


def test_refused_offer_fails_in_one_line_before_any_byte() -> None:
    server = files_server()
    local_id, sent = offer(server)
    server.send(m.RequestDone(sent.request_id, ErrorCode.QUOTA, 0, "over your quota of 500 MB"))
    pump(server)
    assert server.events(ev.FileFailed) == [
        ev.FileFailed(local_id, "lab3.py", "up", "over your quota of 500 MB")
    ]
    assert not server.sent(m.FileChunk) and not list(server.conn.files.wants())


def test_checksum_refusal_is_a_failure() -> None:
    server = files_server()
    _, sent = offer(server)
    server.send(m.FileState(3, sent.request_id, 0))
    pump(server)
    server.send(m.FileState(3, 0, 0, ErrorCode.BAD_CHECKSUM, "checksum mismatch"))
    [failed] = server.events(ev.FileFailed)
    assert "checksum" in failed.reason  # type: ignore[attr-defined]


def test_upload_resumes_after_a_server_restart_where_the_server_says() -> None:
    server = files_server()
    _, sent = offer(server)
    server.send(m.FileState(4, sent.request_id, 0))
    pump(server)
    server.restart()
    login = server.last(m.Login)
    server.send(m.LoginOk(login.user, "lobby", flags=FILES), m.RoomState("lobby", members=2))  # type: ignore[attr-defined]
    again = server.last(m.FileOffer)
    assert isinstance(again, m.FileOffer) and again is not sent and again.sha256 == DIGEST
    before = len(server.sent(m.FileChunk))
    server.send(m.FileState(4, again.request_id, 3000))  # the server kept 3000 bytes
    pump(server)
    resumed = server.sent(m.FileChunk)[before:]
    assert resumed[0].offset == 3000  # type: ignore[attr-defined]
    assert b"".join(c.data for c in resumed) == DATA[3000:]  # type: ignore[attr-defined]
    server.send(m.FileState(4, 0, len(DATA), 0, "stored"))
    assert server.events(ev.FileDone)


def test_a_state_beyond_what_was_sent_moves_the_upload_there() -> None:
    server = files_server()
    _, sent = offer(server)
    server.send(m.FileState(4, sent.request_id, 0))
    pump(server)
    server.send(m.FileState(4, 0, 960))  # "I hold 960: go on from there"
    pump(server)
    assert server.sent(m.FileChunk)[-1].offset + len(server.sent(m.FileChunk)[-1].data) == len(DATA)  # type: ignore[attr-defined]
    assert any(c.offset == 960 for c in server.sent(m.FileChunk)[11:])  # type: ignore[attr-defined]


def test_cancel_upload_tells_the_server() -> None:
    server = files_server()
    local_id, sent = offer(server)
    server.send(m.FileState(8, sent.request_id, 0))
    server.conn.cancel_file(local_id, "cancelled", direction="up")
    server.exchange()
    assert server.last(m.FileCancel) == m.FileCancel(8, "")
    assert server.events(ev.FileFailed) == [ev.FileFailed(local_id, "lab3.py", "up", "cancelled")]
    assert not list(server.conn.files.wants())


def test_offer_refused_locally_without_the_capability_or_with_a_bad_name() -> None:
    server = logged_in(("lobby",))
    with pytest.raises(LocalProtocolError, match="does not take files"):
        server.conn.offer_file("a.txt", 1, DIGEST, server.now)
    server = files_server()
    with pytest.raises(LocalProtocolError, match=r"'\.\.'"):
        server.conn.offer_file("..", 1, DIGEST, server.now)
    with pytest.raises(LocalProtocolError, match="not in #cs101"):
        server.conn.offer_file("a.txt", 1, DIGEST, server.now, room="cs101")


# ---------------------------------------------------------------- downloads


def test_offer_accept_download_verified() -> None:
    server = files_server()
    server.send(offered())
    [offer_event] = server.events(ev.FileOffered)
    assert isinstance(offer_event, ev.FileOffered)
    assert (offer_event.file_id, offer_event.sender, offer_event.sha256) == (7, "bob", DIGEST.hex())
    assert not server.sent(m.FileGet)  # an offer is a suggestion
    server.conn.accept_file(7, server.now)
    server.exchange()
    assert server.last(m.FileGet) == m.FileGet(7, 0)
    stream(server, 7, DATA)
    assert received(server) == DATA
    [done] = server.events(ev.FileDone)
    assert done == ev.FileDone(7, "lab3.py", "down", None, DIGEST.hex())


def test_decline_sends_nothing_and_the_offer_stays_listed_as_declined() -> None:
    server = files_server()
    server.send(offered())
    server.conn.decline_file(7)
    server.exchange()
    assert not server.sent(m.FileGet) and not server.sent(m.FileCancel)
    [down] = server.conn.file_offers("lobby")
    assert down.state is State.DECLINED
    server.conn.accept_file(7, server.now)  # changed one's mind: still possible
    server.exchange()
    assert server.last(m.FileGet) == m.FileGet(7, 0)


def test_checksum_mismatch_is_an_error_never_a_saved_file() -> None:
    server = files_server()
    server.send(offered(data=DATA))
    server.conn.accept_file(7, server.now)
    server.exchange()
    bad = bytearray(DATA)
    bad[5000] ^= 1
    stream(server, 7, bytes(bad))
    assert not server.events(ev.FileDone)
    [failed] = server.events(ev.FileFailed)
    assert "SHA-256" in failed.reason  # type: ignore[attr-defined]


def test_download_resumes_after_reconnect_from_the_bytes_held() -> None:
    server = files_server()
    server.send(offered())
    server.conn.accept_file(7, server.now)
    server.exchange()
    stream(server, 7, DATA, 0, 4800)
    server.restart()
    login = server.last(m.Login)
    server.send(m.LoginOk(login.user, "lobby", flags=FILES))  # type: ignore[attr-defined]
    assert server.last(m.FileGet) == m.FileGet(7, 4800)
    stream(server, 7, DATA, 0, 1920)  # the tail of the old stream, resent: dropped
    stream(server, 7, DATA, 4800)
    assert received(server) == DATA
    assert len(server.events(ev.FileDone)) == 1


def test_no_such_file_fails_the_download() -> None:
    server = files_server()
    server.send(offered())
    server.conn.accept_file(7, server.now)
    server.send(m.FileState(7, 0, 0, ErrorCode.NO_SUCH_FILE, "that file has expired"))
    assert server.events(ev.FileFailed) == [ev.FileFailed(7, "lab3.py", "down", "that file has expired")]


def test_cancelled_download_sends_file_cancel_and_drops_later_data() -> None:
    server = files_server()
    server.send(offered())
    server.conn.accept_file(7, server.now)
    server.exchange()
    stream(server, 7, DATA, 0, 960)
    server.conn.cancel_file(7, "disk full", direction="down")
    server.exchange()
    assert server.last(m.FileCancel) == m.FileCancel(7, "")
    stream(server, 7, DATA, 960)
    assert received(server) == DATA[:960] and not server.events(ev.FileDone)


def test_listing_is_reported_once_per_file_and_files_asks_the_server() -> None:
    server = files_server()
    request_id = server.conn.list_files(None, server.now)
    server.exchange()
    assert server.last(m.ListFiles) == m.ListFiles(request_id, "lobby")
    server.send(offered(listing=1, request_id=request_id), offered(listing=1, request_id=request_id))
    server.send(m.RequestDone(request_id))
    assert len(server.events(ev.FileOffered)) == 1
    assert not server.conn.request_pending(request_id)


def test_hostile_offer_names_are_made_printable_not_trusted() -> None:
    server = files_server()
    server.send(offered(name="../../.bashrc\x1b[2J", sender="bob\x07"))
    [offer_event] = server.events(ev.FileOffered)
    assert "\x1b" not in offer_event.name and "\x07" not in offer_event.sender  # type: ignore[attr-defined]


# ---------------------------------------------------------------- progress (the fake clock)


def test_progress_rate_and_eta_from_the_clock_given() -> None:
    progress = Progress(10_000_000)
    progress.restart(0, 100.0)
    for second in range(1, 5):
        progress.update(second * 1_000_000, 100.0 + second)
    assert progress.rate_bps == pytest.approx(1_000_000, rel=0.01)
    assert progress.eta_s == pytest.approx(6.0, rel=0.01)
    assert progress.due(104.0) and not progress.due(104.0 + PROGRESS_EVERY_S / 2)
    assert progress.due(104.0 + PROGRESS_EVERY_S)
    stalled = Progress(10)
    assert stalled.rate_bps == 0.0 and stalled.eta_s is None


def test_download_progress_is_reported_at_most_four_times_a_second_and_at_the_end() -> None:
    server = files_server()
    big = os.urandom(100 * m.MAX_CHUNK_BYTES)
    server.send(offered(data=big))
    server.conn.accept_file(7, server.now)
    server.exchange()
    for offset in range(0, len(big), m.MAX_CHUNK_BYTES):
        server.now += 0.01  # 100 chunks a second
        server.send(m.FileData(7, offset, big[offset : offset + m.MAX_CHUNK_BYTES]))
    progress = server.events(ev.FileProgress)
    assert 3 <= len(progress) <= 6
    last = progress[-1]
    assert isinstance(last, ev.FileProgress) and last.done == last.size == len(big)
    assert last.rate_bps == pytest.approx(96_000, rel=0.1)


# ---------------------------------------------------------------- hostile input


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.builds(
                m.FileOffered,
                file_id=st.integers(0, 3),
                room=st.text(max_size=8),
                to=st.text(max_size=8),
                sender=st.text(max_size=8),
                name=st.text(max_size=40),
                size=st.sampled_from([0, 1, 5, 2000, 2**64 - 1]),
                sha256=st.binary(max_size=40),
                flags=st.integers(0, 255),
                listing=st.integers(0, 1),
            ),
            st.builds(
                m.FileData,
                file_id=st.integers(0, 3),
                offset=st.sampled_from([0, 1, 5, 960, 2000, 2**64 - 1]),
                data=st.binary(min_size=1, max_size=960),
            ),
            st.builds(
                m.FileState,
                file_id=st.integers(0, 3),
                request_id=st.integers(0, 3),
                received=st.integers(0, 2**64 - 1),
                code=st.integers(0, 255),
                text=st.text(max_size=20),
            ),
        ),
        max_size=30,
    )
)
def test_hostile_file_messages_never_raise_nor_write_beyond_an_offer(messages: list[m.Message]) -> None:
    files = Transfers()
    accepted = False
    for message in messages:
        if isinstance(message, m.FileOffered):
            files.on_offered(message, 1.0)
            if not accepted and message.file_id in files.downloads:
                files.accept(message.file_id, 1.0)
                accepted = True
        elif isinstance(message, m.FileData):
            files.on_data(message, 1.0)
        else:
            files.on_state(message, 1.0)
    held: dict[int, int] = {}
    for event in files.events():
        if isinstance(event, ev.FileChunkReceived):
            assert event.offset == held.get(event.file_id, 0)
            held[event.file_id] = event.offset + len(event.data)
            assert held[event.file_id] <= files.downloads[event.file_id].size
        if isinstance(event, ev.FileDone):
            down = files.downloads[event.file_id]
            assert hashlib.sha256(b"").hexdigest() == event.sha256 or held.get(event.file_id) == down.size
        if isinstance(event, ev.FileOffered):
            assert "\x00" not in event.name and "\x1b" not in event.name


def test_all_bytes_held_is_not_stored_until_the_server_says_so() -> None:
    server = files_server()
    _, sent = offer(server)
    server.send(m.FileState(6, sent.request_id, len(DATA)))  # a resumed offer: every byte is there
    pump(server)
    assert not server.sent(m.FileChunk) and not server.events(ev.FileDone)
    server.send(m.FileState(6, 0, 0, ErrorCode.BAD_CHECKSUM, "checksum mismatch"))
    assert server.events(ev.FileFailed) and not server.events(ev.FileDone)


def test_a_chat_line_waits_behind_at_most_the_file_window() -> None:
    """21.7: file frames never fill the link; a line typed mid-upload leaves before the chunks
    still queued, not behind the rest of the file."""
    server = files_server()
    big = os.urandom(500 * m.MAX_CHUNK_BYTES)
    _, sent = offer(server, big)
    server.send(m.FileState(5, sent.request_id, 0))
    for _ in range(3):
        for local, offset, length in server.conn.files.wants():
            server.conn.files.feed(local, offset, big[offset : offset + length])
    server.conn.datagrams_to_send(server.now)  # the window fills with chunks, none acknowledged
    server.conn.say("is the handout up?", server.now)
    assert server.conn._link.bulk_pending <= server.conn.config.file_window
    server.conn.datagrams_to_send(server.now)
    assert server.conn._link.bulk_pending <= server.conn.config.file_window  # (the link sends chat first)
    assert len(server.conn.files.uploads[1].buffer) > 0  # the rest of the file waits its turn


def test_an_offer_made_before_login_to_a_server_without_files_fails_in_one_line() -> None:
    server = ScriptedServer.start()
    local_id = server.conn.offer_file("a.txt", len(DATA), DIGEST, server.now)
    login = server.last(m.Login)
    server.send(m.LoginOk(login.user, "lobby", flags=m.CAP_ROOMS | m.CAP_LONG_MESSAGES))  # type: ignore[attr-defined]
    [failed] = server.events(ev.FileFailed)
    assert failed == ev.FileFailed(
        local_id, "a.txt", "up", "this server does not take files: it runs an older labchat"
    )
    assert not server.sent(m.FileOffer)


def test_at_most_a_burst_of_chunks_is_queued_per_call_and_the_caller_is_told_more_may_go() -> None:
    """21.7: sealing a whole window in one call would hold the event loop while chat waits; each
    call queues at most `file_frames_per_flush`, and `file_frames_waiting` asks for the next call."""
    server = files_server()
    big = os.urandom(300 * m.MAX_CHUNK_BYTES)
    _, sent = offer(server, big)
    server.send(m.FileState(5, sent.request_id, 0))
    burst = server.conn.config.file_frames_per_flush
    assert burst < server.conn.config.file_window
    for _ in range(3):
        for local, offset, length in server.conn.files.wants():
            server.conn.files.feed(local, offset, big[offset : offset + length])
    server.conn.datagrams_to_send(server.now)
    assert server.conn._link.bulk_pending == burst and server.conn.file_frames_waiting
    link = server.conn._link
    for _ in range(10):  # the link sends what its windows allow; at most a burst waits in it unsent
        before = link.bulk_pending
        server.conn.datagrams_to_send(server.now)
        assert link.bulk_queued <= burst and link.bulk_pending - before <= burst
        if not server.conn.file_frames_waiting:
            break
    assert link.bulk_pending <= max(server.conn.config.file_window, link.bulk_limit)
