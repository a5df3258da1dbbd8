"""Files in the relay (docs/protocol.md 21), driven in-process with raw peers that speak the wire
protocol as an independent CAP_FILES client would: offers, uploads, downloads with flow control,
resumes after a reconnect and after a restart of the relay, quotas, hostile names, retention."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labchat.protocol import messages as m
from labchat.protocol.errors import ErrorCode
from labchat.protocol.wire import decode_message, encode_message
from labchat.server.files import DAY_S, FRAMES_PER_FLUSH, MIB, WRITE_BLOCK_BYTES, FilePolicy, human_size
from labchat.server.relay import Relay, RelayConfig

from ..protocol.sim import SimNet
from .test_rooms import ROOMS, Peer

FILES = ROOMS | m.CAP_FILES
CHUNK = m.MAX_CHUNK_BYTES


def make_net(tmp_path: Path, **policy: object) -> SimNet:
    return SimNet(tmp_path, relay_config=RelayConfig(files=FilePolicy(**policy)))  # type: ignore[arg-type]


def relay_of(net: SimNet) -> Relay:
    assert net.relay is not None
    return net.relay


def files_dir(net: SimNet) -> Path:
    return relay_of(net).files.disk.directory


def offer(peer: Peer, data: bytes, name: str = "lab3.py", *, room: str = "lobby", to: str = "",
          sha: bytes | None = None) -> m.FileState | m.RequestDone:  # fmt: skip
    """FILE_OFFER; the FILE_STATE that answers it, or the REQUEST_DONE that refuses it."""
    peer.next_id += 1
    start = len(peer.messages)
    digest = hashlib.sha256(data).digest() if sha is None else sha
    peer.send(m.FileOffer(peer.next_id, room, to, name, len(data), digest, "text/x-python"))
    for x in peer.messages[start:]:
        if isinstance(x, (m.FileState, m.RequestDone)) and x.request_id == peer.next_id:
            return x
    raise AssertionError(f"no answer to the offer: {peer.messages[start:]}")


def upload(peer: Peer, file_id: int, data: bytes, start: int = 0, stop: int | None = None) -> None:
    """FILE_CHUNKs of `data[start:stop]`, in order, a few per pump."""
    stop = len(data) if stop is None else stop
    for i, offset in enumerate(range(start, stop, CHUNK)):
        chunk = data[offset : min(offset + CHUNK, stop)]
        peer.link.send(m.Kind.FILE_CHUNK, encode_message(m.FileChunk(file_id, offset, chunk)))
        if i % 16 == 15:
            peer.pump()
    peer.pump()


def settle(net: SimNet, *peers: Peer, rounds: int = 2000) -> None:
    """Let the clock run in small steps (delayed ACKs, retransmissions) until nothing moves."""
    relay = relay_of(net)
    for _ in range(rounds):
        net.now += 0.005
        for peer in peers:
            peer.link.handle_timer(net.now)
        relay.handle_timer(net.now)
        peers[0].pump()
        if not relay.files.streaming and all(p.link.idle for p in peers):
            return


def downloaded(peer: Peer, file_id: int, since: int = 0) -> bytes:
    """The bytes of `file_id` that came in FILE_DATA (from the first frame's offset on), checked in order."""
    parts = [x for x in peer.of(m.FileData, since) if x.file_id == file_id]
    out = bytearray()
    for part in parts:
        assert part.offset == parts[0].offset + len(out), "FILE_DATA out of order"
        out += part.data
    return bytes(out)


def stored(peer: Peer, file_id: int) -> m.FileState:
    states = [x for x in peer.of(m.FileState) if x.file_id == file_id]
    assert states, f"{peer.user} got no FILE_STATE for {file_id}"
    return states[-1]


def payload(size: int, seed: int = 1) -> bytes:
    return bytes((i * 31 + seed) % 251 for i in range(size))


def stored_in_lobby(net: SimNet, size: int) -> tuple[Peer, Peer, bytes, m.FileState]:
    """ana and budi in the lobby, and a file of `size` bytes that ana offered and uploaded."""
    ana, budi = Peer(net, "ana", flags=FILES), Peer(net, "budi", flags=FILES)
    data = payload(size)
    state = offer(ana, data)
    assert isinstance(state, m.FileState)
    upload(ana, state.file_id, data)
    return ana, budi, data, state


# ------------------------------------------------------------ offer, upload, offer to the room, download


def test_offer_upload_offer_to_the_room_and_download(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="labchat.server.files")
    net = make_net(tmp_path)
    ana, budi = Peer(net, "ana", flags=FILES), Peer(net, "budi", flags=FILES)
    olga = Peer(net, "olga", flags=ROOMS)  # no CAP_FILES: hears nothing of files
    assert relay_of(net).config.capabilities & m.CAP_FILES and ana.last(m.LoginOk).flags & m.CAP_FILES
    data = payload(4300)
    state = offer(ana, data)
    assert isinstance(state, m.FileState) and (state.code, state.received) == (0, 0)
    upload(ana, state.file_id, data)
    done = stored(ana, state.file_id)
    assert (done.code, done.received, done.text) == (0, len(data), "stored")
    offered = budi.last(m.FileOffered)
    assert (offered.file_id, offered.room, offered.to, offered.sender, offered.name, offered.size) == (
        state.file_id, "lobby", "", "ana", "lab3.py", len(data))  # fmt: skip
    assert offered.sha256 == hashlib.sha256(data).digest() and offered.listing == 0
    assert offered.mime == "text/x-python" and offered.ts_ms == int(net.now * 1000)
    assert ana.last(m.FileOffered) == offered and not olga.of(m.FileOffered)
    # on disk: named by id alone, the whole file, nothing left over
    assert sorted(os.listdir(files_dir(net))) == [str(state.file_id)]
    assert (files_dir(net) / str(state.file_id)).read_bytes() == data
    budi.send(m.FileGet(state.file_id, 0))
    settle(net, ana, budi)
    assert downloaded(budi, state.file_id) == data
    assert all(len(x.data) <= CHUNK for x in budi.of(m.FileData))
    assert "ana offered lab3.py (4.2 KB) to lobby" in caplog.text
    assert "budi downloaded lab3.py" in caplog.text


def test_a_download_resumes_from_an_offset_and_a_new_get_replaces_the_stream(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana, budi = Peer(net, "ana", flags=FILES), Peer(net, "budi", flags=FILES)
    data = payload(10_000)
    state = offer(ana, data)
    upload(ana, state.file_id, data)
    start = len(budi.messages)
    budi.send(m.FileGet(state.file_id, 7000))
    settle(net, ana, budi)
    got = [x for x in budi.of(m.FileData, start) if x.file_id == state.file_id]
    assert got[0].offset == 7000 and b"".join(x.data for x in got) == data[7000:]
    start = len(budi.messages)
    budi.send(m.FileGet(state.file_id, len(data)))  # holds it all: nothing to send
    settle(net, ana, budi)
    assert not budi.of(m.FileData, start) and not budi.of(m.FileState, start)
    budi.send(m.FileGet(state.file_id, len(data) + 1))
    assert budi.last(m.FileState).code == ErrorCode.NO_SUCH_FILE


def test_flow_control_keeps_at_most_64_file_frames_unacknowledged(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana, budi, data, state = stored_in_lobby(net, 300 * CHUNK)
    relay = relay_of(net)
    # budi asks, and then acknowledges nothing: the relay stops at 64 FILE_DATA frames
    budi.link.send(m.Kind.FILE_GET, encode_message(m.FileGet(state.file_id, 0)))
    for packet in budi.link.packets_to_send(net.now):
        relay.receive_datagram(budi.channel.seal(packet, net.now), budi.addr, net.now)
    held: list[bytes] = []
    for _ in range(3):
        for data_out, addr in relay.datagrams_to_send(net.now):
            if addr == budi.addr:
                held.append(data_out)
        net.now += 0.5  # retransmissions come, new frames do not
        relay.handle_timer(net.now)
    frames = []
    for datagram in held:
        plain = budi.channel.receive_datagram(datagram, net.now)
        if plain is not None:
            frames.extend(budi.link.receive_packet(plain, net.now))
    offsets = {decode_message(f.kind, f.body).offset for f in frames if f.kind == m.Kind.FILE_DATA}  # type: ignore[attr-defined]
    # the link sends what its congestion window allows; the relay queued 64 frames and no more
    assert 0 < len(offsets) <= 64 and max(offsets) == (len(offsets) - 1) * CHUNK
    link = relay.online_by_key["budi"].link
    # at most 64 unacknowledged, and at most a burst (FRAMES_PER_FLUSH) waiting in the link unsent
    assert 32 <= link.bulk_pending <= 64 and link.bulk_queued <= FRAMES_PER_FLUSH
    # once budi acknowledges, the rest follows
    budi.pump()
    settle(net, ana, budi)
    rest = downloaded(budi, state.file_id)
    assert rest == data[len(data) - len(rest) :] and len(rest) >= len(data) - 64 * CHUNK


# ------------------------------------------------------------ resume


def test_an_upload_resumes_after_a_reconnect(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana, budi = Peer(net, "ana", flags=FILES), Peer(net, "budi", flags=FILES)
    data = payload(50 * CHUNK + 17)
    state = offer(ana, data)
    upload(ana, state.file_id, data, 0, 20 * CHUNK)
    ana.send(m.Bye())
    again = Peer(net, "ana", flags=FILES)
    resumed = offer(again, data)
    assert isinstance(resumed, m.FileState)
    assert (resumed.file_id, resumed.received, resumed.code) == (state.file_id, 20 * CHUNK, 0)
    upload(again, state.file_id, data, 10 * CHUNK, 25 * CHUNK)  # resends below what is held: ignored
    upload(again, state.file_id, data, 25 * CHUNK)
    assert stored(again, state.file_id).text == "stored"
    assert budi.last(m.FileOffered).file_id == state.file_id
    before = len(again.messages)
    upload(again, state.file_id, data, 49 * CHUNK)  # a resend after it was stored: nothing to say
    assert not again.of(m.FileState, before)
    assert (files_dir(net) / str(state.file_id)).read_bytes() == data


def test_a_chunk_beyond_what_is_held_is_answered_with_where_to_go_on(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana = Peer(net, "ana", flags=FILES)
    data = payload(5 * CHUNK)
    state = offer(ana, data)
    upload(ana, state.file_id, data, 0, CHUNK)
    upload(ana, state.file_id, data, 3 * CHUNK, 4 * CHUNK)
    answer = stored(ana, state.file_id)
    assert (answer.code, answer.received) == (0, CHUNK)


def test_an_upload_and_a_download_resume_after_a_restart_of_the_relay(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana = Peer(net, "ana", flags=FILES)
    data = payload(400 * CHUNK + 5)  # 384 KB: the digest is rebuilt from disk as chunks arrive
    state = offer(ana, data)
    upload(ana, state.file_id, data, 0, 350 * CHUNK)
    relay_of(net).files.close()  # the process dies: the OS closes its files
    net.crash_relay()
    net.start_relay()
    Peer._port += 100
    ana = Peer(net, "ana", flags=FILES)
    budi = Peer(net, "budi", flags=FILES)
    resumed = offer(ana, data)
    assert isinstance(resumed, m.FileState) and resumed.received == 350 * CHUNK
    upload(ana, state.file_id, data, resumed.received)
    assert stored(ana, state.file_id).text == "stored"
    budi.send(m.FileGet(state.file_id, 0))
    settle(net, ana, budi)
    # budi had written 100 frames to disk when the server died
    part = b"".join(x.data for x in budi.of(m.FileData)[:100])
    assert len(part) == 100 * CHUNK
    relay_of(net).files.close()
    net.crash_relay()
    net.start_relay()
    Peer._port += 100
    budi = Peer(net, "budi", flags=FILES)
    listed = [x for x in budi.of(m.FileOffered) if x.file_id == state.file_id]
    assert listed and listed[0].listing == 1
    budi.send(m.FileGet(state.file_id, len(part)))
    settle(net, budi)
    assert part + downloaded(budi, state.file_id) == data


def test_a_crash_loses_at_most_the_unwritten_block_and_the_upload_resumes_from_disk(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana = Peer(net, "ana", flags=FILES)
    data = payload(200 * CHUNK)
    state = offer(ana, data)
    upload(ana, state.file_id, data, 0, 150 * CHUNK)
    relay = relay_of(net)
    [held] = relay.files._uploads.values()
    on_disk = relay.files.disk.part_path(state.file_id).stat().st_size
    # chunks reach the disk a block at a time; the last ones are held in memory
    assert held.received == 150 * CHUNK and 0 < len(held.unwritten) < WRITE_BLOCK_BYTES
    assert on_disk == held.received - len(held.unwritten) and on_disk >= WRITE_BLOCK_BYTES
    os.close(held.fd)  # kill -9: the OS closes the file, and what the process held is gone
    net.crash_relay()
    net.start_relay()
    Peer._port += 100
    ana = Peer(net, "ana", flags=FILES)
    resumed = offer(ana, data)
    assert isinstance(resumed, m.FileState) and resumed.received == on_disk
    upload(ana, state.file_id, data, resumed.received)
    assert stored(ana, state.file_id).text == "stored"
    assert relay_of(net).files.disk.final_path(state.file_id).read_bytes() == data


# ------------------------------------------------------------ refusals


def test_too_large_quota_no_such_room_and_no_such_user_are_refused_before_any_byte(tmp_path: Path) -> None:
    net = make_net(tmp_path, max_file_bytes=10_000, quota_bytes=25_000)
    ana = Peer(net, "ana", flags=FILES)
    big = offer(ana, payload(10_001))
    assert isinstance(big, m.RequestDone) and big.code == ErrorCode.FILE_TOO_LARGE
    assert "9.8 KB" in big.text
    first = offer(ana, payload(9000, 1), "a.txt")
    second = offer(ana, payload(9000, 2), "b.txt")
    assert isinstance(first, m.FileState) and isinstance(second, m.FileState)
    over = offer(ana, payload(9000, 3), "c.txt")  # unfinished uploads count too
    assert isinstance(over, m.RequestDone) and over.code == ErrorCode.QUOTA and "quota" in over.text
    again = offer(ana, payload(9000, 2), "b.txt")  # a resume is not counted twice
    assert isinstance(again, m.FileState) and again.file_id == second.file_id
    room = offer(ana, payload(10), room="cs101")
    assert isinstance(room, m.RequestDone) and room.code == ErrorCode.NO_SUCH_ROOM
    nobody = offer(ana, payload(10), to="nobody")
    assert isinstance(nobody, m.RequestDone) and nobody.code == ErrorCode.NO_SUCH_USER
    ana.send(m.FileCancel(first.file_id, "changed my mind"))
    assert isinstance(offer(ana, payload(9000, 3), "c.txt"), m.FileState)  # the cancel freed quota
    assert sorted(os.listdir(files_dir(net))) == sorted(
        f"{i}.part" for i in (second.file_id, first.file_id + 2)
    )


def test_a_muted_member_and_a_moderated_room_refuse_offers(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana, budi = Peer(net, "ana", flags=FILES), Peer(net, "budi", flags=FILES)
    assert ana.request(m.JoinRoom, "cs101").code == 0
    assert budi.request(m.JoinRoom, "cs101").code == 0
    assert ana.request(m.Moderate, "cs101", m.Action.MUTE, "budi", 10, "").code == 0
    muted = offer(budi, b"x", room="cs101")
    assert isinstance(muted, m.RequestDone) and muted.code == ErrorCode.MUTED
    assert ana.request(m.Moderate, "cs101", m.Action.UNMUTE, "budi", 0, "").code == 0
    assert ana.request(m.SetRoom, "cs101", m.Setting.MODERATED, "on").code == 0
    moderated = offer(budi, b"x", room="cs101")
    assert isinstance(moderated, m.RequestDone) and moderated.code == ErrorCode.MODERATED
    assert isinstance(offer(ana, b"x", room="cs101"), m.FileState)  # the operator still may


def test_a_checksum_mismatch_deletes_the_upload(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana, budi = Peer(net, "ana", flags=FILES), Peer(net, "budi", flags=FILES)
    data = payload(3000)
    state = offer(ana, data, sha=hashlib.sha256(b"something else").digest())
    upload(ana, state.file_id, data)
    bad = stored(ana, state.file_id)
    assert bad.code == ErrorCode.BAD_CHECKSUM and "SHA-256" in bad.text
    assert not budi.of(m.FileOffered) and os.listdir(files_dir(net)) == []
    assert relay_of(net).files.disk.get(state.file_id) is None
    budi.send(m.FileGet(state.file_id, 0))
    assert budi.last(m.FileState).code == ErrorCode.NO_SUCH_FILE


def test_more_bytes_than_offered_end_the_upload(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana = Peer(net, "ana", flags=FILES)
    data = payload(1000)
    state = offer(ana, data[:500])
    upload(ana, state.file_id, data)
    codes = [x.code for x in ana.of(m.FileState) if x.file_id == state.file_id]
    assert codes == [0, ErrorCode.BAD_CHECKSUM, ErrorCode.NO_SUCH_FILE]  # the chunk after: no upload
    assert os.listdir(files_dir(net)) == []


# ------------------------------------------------------------ names


def _hostile_offer_body(request_id: int, name: bytes, size: int) -> bytes:
    """A FILE_OFFER laid out by hand, so that the name and the size are whatever bytes we like."""

    def s(b: bytes) -> bytes:
        return len(b).to_bytes(2, "big") + b

    return (request_id.to_bytes(4, "big") + s(b"lobby") + s(b"") + s(name) + size.to_bytes(8, "big")
            + s(bytes(32)) + s(b"") + b"\0")  # fmt: skip


_NETS: dict[Path, tuple[SimNet, Peer]] = {}

HOSTILE = st.one_of(
    st.sampled_from(["../etc/passwd", "/etc/passwd", "a/b", "a\\b", "nul\0byte", "tab\there", "bell\x07",
                     "\x85next-line", ".hidden", ".", "..", "", "CON", "nul.txt", "LPT1", "com9.py",
                     "x" * 256, "é" * 128, "ok name.txt", "trailing. ", "COM1:"]),
    st.text(max_size=80),
)  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=HOSTILE, size=st.integers(min_value=0, max_value=2**64 - 1))
def test_hostile_names_and_sizes_are_refused_cleanly(tmp_path: Path, name: str, size: int) -> None:
    if tmp_path not in _NETS:
        net = make_net(tmp_path, quota_bytes=2**62)
        _NETS[tmp_path] = (net, Peer(net, "ana", flags=FILES))
    net, ana = _NETS[tmp_path]
    ana.next_id += 1
    start = len(ana.messages)
    ana.link.send(m.Kind.FILE_OFFER, _hostile_offer_body(ana.next_id, name.encode("utf-8"), size))
    ana.pump()
    answers = [x for x in ana.messages[start:] if getattr(x, "request_id", None) == ana.next_id]
    assert len(answers) == 1, ana.messages[start:]
    answer = answers[0]
    problem = m.file_name_problem(name)
    if problem is not None:
        assert isinstance(answer, m.RequestDone) and answer.code == ErrorCode.BAD_FILE_NAME
        assert answer.text.startswith("file name refused")
    elif size > 100 * MIB:
        assert isinstance(answer, m.RequestDone) and answer.code == ErrorCode.FILE_TOO_LARGE
    else:
        assert isinstance(answer, m.FileState) and answer.code in (0, ErrorCode.BAD_CHECKSUM)
        ana.send(m.FileCancel(answer.file_id, ""))  # (an upload a user may have at once)
    # whatever the name, the directory holds only names made of digits
    directory = relay_of(net).files.disk.directory
    assert all(f.removesuffix(".part").isdigit() for f in os.listdir(directory))
    assert directory.parent == tmp_path


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from([m.Kind.FILE_OFFER, m.Kind.FILE_CHUNK, m.Kind.FILE_GET, m.Kind.FILE_CANCEL,
                             m.Kind.FILES]), body=st.binary(max_size=300))  # fmt: skip
def test_any_bytes_in_file_frames_never_crash_the_relay(tmp_path: Path, kind: int, body: bytes) -> None:
    key = tmp_path / "raw"
    if key not in _NETS:
        key.mkdir()
        net = make_net(key)
        _NETS[key] = (net, Peer(net, "ana", flags=FILES))
    net, ana = _NETS[key]
    ana.link.send(kind, body)
    ana.pump()
    assert relay_of(net).sessions  # still serving


# ------------------------------------------------------------ to one person, listings


def test_a_file_for_one_person_reaches_only_them_even_offline(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana, carl = Peer(net, "ana", flags=FILES), Peer(net, "carl", flags=FILES)
    budi = Peer(net, "budi", flags=FILES)
    budi.send(m.Bye())
    data = payload(2000)
    state = offer(ana, data, "notes.txt", to="BUDI")
    upload(ana, state.file_id, data)
    assert stored(ana, state.file_id).text == "stored"
    assert not carl.of(m.FileOffered) and ana.last(m.FileOffered).to == "budi"
    carl.send(m.FileGet(state.file_id, 0))
    assert carl.last(m.FileState).code == ErrorCode.NO_SUCH_FILE
    budi = Peer(net, "budi", flags=FILES)
    got = [x for x in budi.of(m.FileOffered) if x.file_id == state.file_id]
    assert len(got) == 1 and (got[0].to, got[0].listing) == ("budi", 1)
    budi.send(m.FileGet(state.file_id, 0))
    settle(net, ana, budi, carl)
    assert downloaded(budi, state.file_id) == data


def test_late_joiners_and_files_requests_list_the_rooms_files(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana = Peer(net, "ana", flags=FILES)
    assert ana.request(m.JoinRoom, "cs101").code == 0
    data = payload(1500)
    state = offer(ana, data, "handout.pdf", room="cs101")
    upload(ana, state.file_id, data)
    budi = Peer(net, "budi", flags=FILES)
    assert not budi.of(m.FileOffered)
    assert budi.request(m.ListFiles, "cs101").code == ErrorCode.NO_SUCH_ROOM
    assert budi.request(m.JoinRoom, "cs101").code == 0
    listed = budi.last(m.FileOffered)
    assert (listed.file_id, listed.listing, listed.name) == (state.file_id, 1, "handout.pdf")
    start = len(budi.messages)
    done = budi.request(m.ListFiles, "cs101")
    assert done.code == 0
    answers = budi.of(m.FileOffered, start)
    assert [(x.file_id, x.request_id, x.listing) for x in answers] == [(state.file_id, budi.next_id, 1)]
    assert budi.request(m.ListFiles, "lobby").code == 0


def test_an_undecodable_offer_is_answered_and_an_overlong_name_is_a_name_problem(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana = Peer(net, "ana", flags=FILES)
    ana.link.send(m.Kind.FILE_OFFER, _hostile_offer_body(91, b"x" * 300, 10))
    ana.pump()
    done = ana.last(m.RequestDone)
    assert (done.request_id, done.code) == (91, ErrorCode.BAD_FILE_NAME)


def test_an_empty_file_is_stored_at_once(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana, budi = Peer(net, "ana", flags=FILES), Peer(net, "budi", flags=FILES)
    state = offer(ana, b"", "empty.txt")
    assert stored(ana, state.file_id).text == "stored"
    assert budi.last(m.FileOffered).size == 0


# ------------------------------------------------------------ damage on disk, retention


def test_a_missing_or_damaged_file_on_disk_is_no_such_file(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana, budi = Peer(net, "ana", flags=FILES), Peer(net, "budi", flags=FILES)
    ids = []
    for i in range(2):
        data = payload(3000, i)
        state = offer(ana, data, f"f{i}.txt")
        upload(ana, state.file_id, data)
        ids.append(state.file_id)
    (files_dir(net) / str(ids[0])).unlink()
    (files_dir(net) / str(ids[1])).write_bytes(b"short")
    for file_id in ids:
        budi.send(m.FileGet(file_id, 0))
        answer = budi.last(m.FileState)
        assert (answer.file_id, answer.code) == (file_id, ErrorCode.NO_SUCH_FILE)
    assert relay_of(net).sessions


def test_retention_deletes_kept_files_and_unfinished_uploads(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana, budi = Peer(net, "ana", flags=FILES), Peer(net, "budi", flags=FILES)
    data = payload(2000)
    kept = offer(ana, data, "kept.txt")
    upload(ana, kept.file_id, data)
    half = offer(ana, payload(5000), "half.txt")
    upload(ana, half.file_id, payload(5000), 0, 2000)
    files = relay_of(net).files
    assert files.prune(net.now) == 0
    net.now += 25 * 3600  # the unfinished upload is a day old
    assert files.prune(net.now) == 1
    assert sorted(os.listdir(files_dir(net))) == [str(kept.file_id)]
    budi.send(m.FileGet(kept.file_id, 0))
    settle(net, ana, budi)
    assert downloaded(budi, kept.file_id) == data
    net.now += 6 * DAY_S  # 7 days and 1 hour after it was stored: not offered, not served
    start = len(budi.messages)
    budi.send(m.FileGet(kept.file_id, 0))
    assert budi.last(m.FileState).code == ErrorCode.NO_SUCH_FILE and not budi.of(m.FileData, start)
    assert files.prune(net.now) == 1 and files.prune(net.now) == 0
    assert os.listdir(files_dir(net)) == []
    assert files.disk.used_bytes("ana") == 0


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 1023, 4300, 10 * 1024, 100 * MIB, 5 * 1024 * MIB)] == [
        "0 B", "1023 B", "4.2 KB", "10 KB", "100 MB", "5.0 GB"]  # fmt: skip


# ------------------------------------------------------------ the command line


def test_file_flags_are_checked_with_one_line(capsys) -> None:  # type: ignore[no-untyped-def]
    from labchat.server.cli import build_parser, main

    for flag in ("--max-file-mb", "--quota-mb", "--file-retention-days"):
        assert main(["127.0.0.1", "-p", "0", flag, "0"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "must be more than 0" in err
    argv = ["127.0.0.1", "--max-file-mb", "2.5", "--quota-mb", "40", "--file-retention-days", "1"]
    args = build_parser().parse_args([*argv, "--files-dir", "x"])
    got = (args.max_file_mb, args.quota_mb, args.file_retention_days, args.files_dir)
    assert got == (2.5, 40, 1, Path("x"))


# ------------------------------------------------------------ real sockets


class SocketPeer:
    """A raw client on a real UDP socket on 127.0.0.1: the channel and link of the protocol, driven
    by asyncio, sending whatever messages the test likes."""

    def __init__(self, server_addr: tuple[str, int]) -> None:
        import socket

        from labchat.protocol.channel import ClientChannel
        from labchat.protocol.reliability import ReliableLink

        self.server = server_addr
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.channel = ClientChannel(None)
        self.link = ReliableLink()
        self.messages: list[m.Message] = []
        self.clock = time.monotonic
        self.channel.start(self.clock())

    def send(self, message: m.Message) -> None:
        self.link.send(message.KIND, encode_message(message))

    def _flush(self) -> None:
        now = self.clock()
        for d in self.channel.datagrams_to_send():
            self.sock.sendto(d, self.server)
        if self.channel.established:
            for p in self.link.packets_to_send(now):
                self.sock.sendto(self.channel.seal(p, now), self.server)

    async def until(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        """Run the peer (send, receive, timers) until `done()` or the timeout (a failure)."""
        loop = asyncio.get_running_loop()
        deadline = self.clock() + timeout
        while not done():
            assert self.clock() < deadline, "timed out"
            self._flush()
            try:
                data = await asyncio.wait_for(loop.sock_recv(self.sock, 2048), 0.005)
            except TimeoutError:
                data = None
            now = self.clock()
            while data is not None:
                payload = self.channel.receive_datagram(data, now)
                if payload is not None:
                    for frame in self.link.receive_packet(payload, now):
                        self.messages.append(decode_message(frame.kind, frame.body))
                try:
                    data = self.sock.recv(2048)
                except BlockingIOError:
                    data = None
            self.channel.handle_timer(now)
            self.link.handle_timer(now)
        self._flush()

    def close(self) -> None:
        self.sock.close()


async def test_a_file_goes_up_and_down_through_real_sockets(tmp_path: Path) -> None:
    """2 MB up from one raw client and down to another over UDP on 127.0.0.1, through the relay's
    own transport; the rates are printed (pytest -s) for docs/performance.md."""
    from ..helpers import start_server

    server = await start_server(tmp_path)
    ana, budi = SocketPeer(server.address), SocketPeer(server.address)
    try:
        for peer, name in ((ana, "ana"), (budi, "budi")):
            peer.send(m.Login(name, "secret", "lobby", 0, FILES))
            await peer.until(lambda p=peer: any(isinstance(x, m.Presence) for x in p.messages))  # type: ignore[misc]
        data = os.urandom(2 * MIB)
        ana.send(m.FileOffer(1, "lobby", "", "data.bin", len(data), hashlib.sha256(data).digest()))
        await ana.until(lambda: any(isinstance(x, m.FileState) for x in ana.messages))
        file_id = next(x for x in ana.messages if isinstance(x, m.FileState)).file_id
        started = time.perf_counter()
        for offset in range(0, len(data), CHUNK):
            ana.send(m.FileChunk(file_id, offset, data[offset : offset + CHUNK]))
        await ana.until(lambda: any(isinstance(x, m.FileState) and x.text == "stored" for x in ana.messages))
        up = time.perf_counter() - started
        await budi.until(lambda: any(isinstance(x, m.FileOffered) for x in budi.messages))
        started = time.perf_counter()
        budi.send(m.FileGet(file_id, 0))
        got = bytearray()

        def complete() -> bool:
            while budi.messages:
                x = budi.messages.pop(0)
                if isinstance(x, m.FileData):
                    assert x.offset == len(got)
                    got.extend(x.data)
            return len(got) == len(data)

        await budi.until(complete, 60)
        down = time.perf_counter() - started
        assert bytes(got) == data
        print(f"\n2 MB up {len(data) / up / MIB:.1f} MB/s, down {len(data) / down / MIB:.1f} MB/s")
    finally:
        ana.close()
        budi.close()
        await server.stop(grace_s=0)


def test_a_quiet_room_refuses_offers_from_members(tmp_path: Path) -> None:
    """Quiet mode (20.5) is the classroom's; this runs once room.py has it."""
    from labchat.server.room import Room

    if not hasattr(Room, "quiet"):
        import pytest

        pytest.skip("quiet mode is not in this build")
    net = make_net(tmp_path)
    ana, budi = Peer(net, "ana", flags=FILES), Peer(net, "budi", flags=FILES)
    assert ana.request(m.JoinRoom, "cs101").code == 0
    assert budi.request(m.JoinRoom, "cs101").code == 0
    relay_of(net).rooms["cs101"].quiet_until_ms = int((net.now + 600) * 1000)  # type: ignore[attr-defined]
    quiet = offer(budi, b"x", room="cs101")
    assert isinstance(quiet, m.RequestDone) and quiet.code == ErrorCode.QUIET
    assert isinstance(offer(ana, b"x", room="cs101"), m.FileState)  # the teacher still may


def test_unfinished_uploads_and_downloads_at_once_are_bounded(tmp_path: Path) -> None:
    from labchat.server.files import MAX_STREAMS_PER_SESSION, MAX_UPLOADS_PER_USER

    net = make_net(tmp_path)
    ana, budi = Peer(net, "ana", flags=FILES), Peer(net, "budi", flags=FILES)
    states = [offer(ana, payload(100 * CHUNK, i), f"f{i}.bin") for i in range(MAX_UPLOADS_PER_USER)]
    assert all(isinstance(x, m.FileState) for x in states)
    over = offer(ana, payload(100 * CHUNK, 99), "one-too-many.bin")
    assert isinstance(over, m.RequestDone) and over.code == ErrorCode.QUOTA and "unfinished" in over.text
    for i, state in enumerate(states):
        upload(ana, state.file_id, payload(100 * CHUNK, i))
    budi.link.send(m.Kind.FILE_GET, b"")  # (undecodable: ignored)
    for state in states[: MAX_STREAMS_PER_SESSION + 1]:
        budi.link.send(m.Kind.FILE_GET, encode_message(m.FileGet(state.file_id, 0)))
    relay = relay_of(net)
    for packet in budi.link.packets_to_send(net.now):  # all at once, before any acknowledgement
        relay.receive_datagram(budi.channel.seal(packet, net.now), budi.addr, net.now)
    budi.pump()
    refused = [x for x in budi.of(m.FileState) if x.code == ErrorCode.RATE_LIMITED]
    assert [x.file_id for x in refused] == [states[MAX_STREAMS_PER_SESSION].file_id]
    settle(net, ana, budi)
    for i, state in enumerate(states[:MAX_STREAMS_PER_SESSION]):
        assert downloaded(budi, state.file_id) == payload(100 * CHUNK, i)


def test_uploads_closed_for_want_of_descriptors_reopen_and_verify(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import labchat.server.files as files_module

    monkeypatch.setattr(files_module, "MAX_OPEN_UPLOADS", 2)
    net = make_net(tmp_path)
    ana = Peer(net, "ana", flags=FILES)
    blobs = [payload(20 * CHUNK, i) for i in range(4)]
    states = [offer(ana, blob, f"f{i}.bin") for i, blob in enumerate(blobs)]
    for step in range(0, 20 * CHUNK, 5 * CHUNK):  # interleaved: each reopen rebuilds the digest from disk
        for state, blob in zip(states, blobs, strict=True):
            upload(ana, state.file_id, blob, step, step + 5 * CHUNK)
        assert len(relay_of(net).files._uploads) <= 2
    for state, blob in zip(states, blobs, strict=True):
        assert stored(ana, state.file_id).text == "stored"
        assert (files_dir(net) / str(state.file_id)).read_bytes() == blob


async def test_retention_runs_in_the_background_with_the_given_clock(tmp_path: Path) -> None:
    from labchat.server.files import prune_files_regularly

    net = make_net(tmp_path)
    ana = Peer(net, "ana", flags=FILES)
    data = payload(2000)
    state = offer(ana, data)
    upload(ana, state.file_id, data)
    files = relay_of(net).files
    pruned = asyncio.Event()
    task = asyncio.create_task(prune_files_regularly(files, lambda: net.now + 8 * DAY_S, pruned))
    try:
        await asyncio.wait_for(pruned.wait(), 10)
    finally:
        task.cancel()
    assert files.pruned == 1 and os.listdir(files_dir(net)) == []


# ------------------------------------------------------------ chat first (21.7)


def test_a_verified_upload_is_flushed_off_the_event_loop_then_kept_and_offered(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana, budi = Peer(net, "ana", flags=FILES), Peer(net, "budi", flags=FILES)
    relay = relay_of(net)
    relay.files.defer_sync = True  # as the transport sets it
    data = payload(5 * CHUNK + 7)
    state = offer(ana, data)
    assert isinstance(state, m.FileState)
    upload(ana, state.file_id, data)
    jobs = relay.files.sync_jobs()
    assert len(jobs) == 1 and relay.files.sync_jobs() == []
    assert not budi.of(m.FileOffered), "offered before its bytes are on disk"
    # While it is flushed: a resent chunk is held data, an offer again is "all here", a cancel is late.
    upload(ana, state.file_id, data, 0, CHUNK)
    again = offer(ana, data)
    assert isinstance(again, m.FileState) and (again.file_id, again.received) == (state.file_id, len(data))
    ana.send(m.FileCancel(state.file_id))
    assert relay.files.sync_jobs() == []
    jobs[0].run()
    assert jobs[0].error is None
    relay.files.synced(jobs[0], net.now)
    ana.pump()
    assert stored(ana, state.file_id).text == "stored"
    assert [x.file_id for x in budi.of(m.FileOffered)] == [state.file_id]
    budi.send(m.FileGet(state.file_id, 0))
    settle(net, ana, budi)
    assert downloaded(budi, state.file_id) == data


def test_a_file_still_being_flushed_at_shutdown_is_kept(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana = Peer(net, "ana", flags=FILES)
    relay = relay_of(net)
    relay.files.defer_sync = True
    data = payload(3 * CHUNK)
    state = offer(ana, data)
    upload(ana, state.file_id, data)
    relay.files.finish_syncs(net.now)  # the transport's file thread has stopped: nothing handed out
    record = relay.files.disk.get(state.file_id)
    assert record is not None and record.stored_ms is not None
    assert relay.files.disk.final_path(state.file_id).read_bytes() == data


def test_sessions_with_file_frames_are_sealed_after_everyone_else(tmp_path: Path) -> None:
    net = make_net(tmp_path)
    ana, budi, _data, state = stored_in_lobby(net, 200 * CHUNK)
    relay = relay_of(net)
    # In one batch: budi asks for the file, ana says a line (to budi and back to her as ACCEPTED).
    budi.link.send(m.Kind.FILE_GET, encode_message(m.FileGet(state.file_id, 0)))
    ana.link.send(m.Kind.SAY, encode_message(m.Say(1, "lobby", "while it streams")))
    for peer in (budi, ana):
        for packet in peer.link.packets_to_send(net.now):
            relay.receive_datagram(peer.channel.seal(packet, net.now), peer.addr, net.now)
    out = [addr for _data, addr in relay.datagrams_to_send(net.now)]
    assert ana.addr in out and budi.addr in out
    last_to_ana = max(i for i, a in enumerate(out) if a == ana.addr)
    assert last_to_ana < min(i for i, a in enumerate(out) if a == budi.addr)
    # ...and a burst per flush: the rest waits in the relay, not in the link, for the next flush.
    link = relay.online_by_key["budi"].link
    assert link.bulk_queued <= FRAMES_PER_FLUSH and relay.files.waiting
