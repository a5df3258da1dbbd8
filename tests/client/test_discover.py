"""Finding a server (docs/protocol.md 19): the probe and answer codecs, a real server answering on
127.0.0.1, and `labchat --discover` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labchat.client.discover import discover
from labchat.protocol.channel import ServerChannel
from labchat.protocol.discovery import (
    ANSWER_MAX_BYTES,
    PROBE_BYTES,
    encode_answer,
    encode_probe,
    parse_answer,
    parse_probe,
)
from labchat.server.keys import load_or_create_server_key

from ..helpers import start_server

pytestmark = pytest.mark.timeout(30)
NONCE = bytes(range(8))
KEY = bytes(range(32))


def test_probe_and_answer_round_trip_and_the_answer_is_never_larger() -> None:
    probe = encode_probe(NONCE)
    assert len(probe) == PROBE_BYTES and parse_probe(probe) == NONCE
    answer = encode_answer(NONCE, KEY, "Lab 3 — Ruang 2 " * 10)  # over 64 bytes: cut at a character
    assert len(answer) <= ANSWER_MAX_BYTES <= PROBE_BYTES
    found = parse_answer(answer, NONCE, ("10.0.0.5", 8080))
    assert found is not None and found.public_key == KEY and found.name.startswith("Lab 3")
    assert parse_answer(answer, bytes(8), ("10.0.0.5", 8080)) is None  # someone else's probe
    assert parse_probe(probe[:-1]) is None and parse_probe(probe + b"\0") is None


@given(st.binary(max_size=300))
def test_parsers_are_total(data: bytes) -> None:
    parse_probe(data)
    parse_answer(data, NONCE, ("10.0.0.5", 8080))


@given(st.binary(min_size=1, max_size=200))
def test_a_damaged_answer_is_dropped_or_well_formed(tail: bytes) -> None:
    answer = encode_answer(NONCE, KEY, "lab")
    damaged = answer[:44] + tail
    found = parse_answer(damaged, NONCE, ("h", 1))
    assert found is None or len(damaged) == 45 + damaged[44]


def test_the_server_channel_answers_at_most_20_a_second_and_not_when_off(tmp_path: Path) -> None:
    channel = ServerChannel(load_or_create_server_key(tmp_path / "k"))
    probe = encode_probe(NONCE)
    channel.receive_datagram(probe, ("127.0.0.1", 5000), 0.0)
    assert channel.datagrams_to_send() == []  # off until a name is set
    channel.discovery_name = "lab"
    for _ in range(50):
        channel.receive_datagram(probe, ("127.0.0.1", 5000), 1.0)
    answers = channel.datagrams_to_send()
    assert len(answers) == 20
    assert all(len(d) <= len(probe) for d, _ in answers)
    channel.receive_datagram(probe, ("127.0.0.1", 0), 5.0)
    assert channel.datagrams_to_send() == []


async def test_a_running_server_answers_a_probe(tmp_path: Path) -> None:
    server = await start_server(tmp_path, server_name="Lab 3")
    server.relay.channel.discovery_name = "Lab 3"
    try:
        host, port = server.address
        found = await discover(host, port, wait_s=0.5)
        assert [(f.name, f.host, f.port) for f in found] == [("Lab 3", host, port)]
        assert found[0].public_key == server.relay.channel.public_key
    finally:
        await server.stop()


async def test_labchat_discover_prints_the_server_and_exits_1_when_none(tmp_path: Path) -> None:
    from ..e2e.procs import PYTHON, env_for, spawn, start_server_proc

    server, port = await start_server_proc(tmp_path, "--name", "Ruang-2")
    probe = await spawn(PYTHON, "-m", "labchat.client", "--discover", "127.0.0.1", str(port), "--json",
                        env=env_for(tmp_path))  # fmt: skip
    assert await probe.wait(15) == 0
    (record,) = [json.loads(line) for line in probe.lines]
    assert (record["type"], record["name"], record["port"]) == ("server", "Ruang-2", port)
    assert record["fingerprint"].startswith("SHA256:")
    await server.kill()

    quiet, port2 = await start_server_proc(tmp_path, "--no-discovery", db=tmp_path / "other.db")
    probe = await spawn(PYTHON, "-m", "labchat.client", "--discover", "127.0.0.1", str(port2),
                        env=env_for(tmp_path))  # fmt: skip
    assert await probe.wait(15) == 1
    assert "no labchat server answered" in await probe.stderr()
    await quiet.kill()
