"""The cluster connection against a real three-node JetStream cluster: order, dedup, a node's death."""

from __future__ import annotations

import contextlib
import time

from hypothesis import given
from hypothesis import strategies as st

from labchat.server.cluster import names
from labchat.server.cluster.codec import CodecError, RoomRecord, decode_room_message, encode_room_message
from labchat.server.cluster.connection import ClusterConnection
from tests.nats_cluster import NatsCluster


async def test_room_seq_is_the_stream_sequence_and_resends_are_stored_once(nats_cluster: NatsCluster) -> None:
    conn = await ClusterConnection.connect(nats_cluster.urls)
    try:
        deadline = time.monotonic() + 20
        seqs = [
            (await conn.publish_room("#Lab", b"x", names.msg_id_header("alice", i), deadline)).seq
            for i in range(5)
        ]
        assert seqs == [1, 2, 3, 4, 5]
        again = await conn.publish_room("#lab", b"x", names.msg_id_header("Alice", 3), deadline)
        assert again.duplicate and again.seq == 4
    finally:
        await conn.close()


async def test_a_publish_survives_the_kill_of_a_node(nats_cluster: NatsCluster) -> None:
    conn = await ClusterConnection.connect(nats_cluster.urls)
    try:
        deadline = time.monotonic() + 30
        await conn.publish_room("lobby", b"before", "a:1", deadline)
        nats_cluster.kill(0)
        after = await conn.publish_room("lobby", b"after", "a:2", deadline)
        assert after.seq == 2 and not after.duplicate
    finally:
        await conn.close()


def test_names_are_safe_subject_tokens() -> None:
    assert names.token("#Lab 1.*>") == names.token("#lab 1.*>")
    assert set(names.token("a.b c*>")) <= set("0123456789abcdef")
    assert names.name_of_token(names.token("Zoë")) == "zoë"


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_are_refused_with_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_room_message(data)


@given(st.integers(0, 2**62), st.text(), st.text(), st.integers(0, 2**31), st.integers(0, 2**63))
def test_room_records_round_trip(ts: int, user: str, text: str, flags: int, msg_id: int) -> None:
    record = RoomRecord(ts, user, text, flags, msg_id)
    assert decode_room_message(encode_room_message(record)) == record
