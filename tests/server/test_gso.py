"""UDP segmentation offload (GSO) in the server's transport, and its plain fallback, on 127.0.0.1."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from labchat.protocol import events as ev
from labchat.protocol.channel import Address
from labchat.server import transport
from labchat.server.transport import DatagramSender, gso_available

from ..helpers import connect, start_server


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # a whole flush, read afterwards
    sock.bind(("127.0.0.1", 0))
    return sock


def _receive(sock: socket.socket, count: int) -> list[bytes]:
    sock.settimeout(5.0)
    return [sock.recv(70000) for _ in range(count)]


def _flush_of(a: Address, b: Address) -> list[tuple[bytes, Address]]:
    """What one flush may hold: runs of equal datagrams to one peer, a shorter one ending a run,
    peers interleaved, a lone datagram, and more than one send's worth of segments."""
    out: list[tuple[bytes, Address]] = []
    out += [(bytes([i]) * 1200, a) for i in range(5)]
    out += [(b"short", a), (b"z" * 1200, a)]
    out += [(b"b" * 300, b)]
    out += [(bytes([i % 250]) * 1000, a) for i in range(70)]  # over 64 segments and 64 kB
    out += [(b"b" * 300, b), (b"b" * 400, b)]  # longer after shorter: two sends
    return out


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "plain"])
def test_sender_delivers_the_same_datagrams_in_order_with_and_without_gso(gso: bool) -> None:
    if gso and not gso_available(_udp()):
        pytest.skip("no UDP GSO on this system")
    out, ra, rb = _udp(), _udp(), _udp()
    try:
        a, b = ra.getsockname(), rb.getsockname()
        flush = _flush_of((a[0], a[1]), (b[0], b[1]))
        sender = DatagramSender(out, out.sendto, gso=gso)
        sender.send(flush)
        want_a = [d for d, to in flush if to[1] == a[1]]
        want_b = [d for d, to in flush if to[1] == b[1]]
        assert _receive(ra, len(want_a)) == want_a
        assert _receive(rb, len(want_b)) == want_b
        assert sender.errors == 0
        if gso:
            assert sender.gso and sender.gso_sends >= 3 and sender.gso_datagrams > 70
        else:
            assert sender.gso_sends == 0
    finally:
        for s in (out, ra, rb):
            s.close()


def test_gso_is_never_tried_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    sock = _udp()
    try:
        assert not gso_available(sock)
    finally:
        sock.close()


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "plain"])
async def test_server_delivers_a_burst_through_either_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gso: bool
) -> None:
    if gso and not gso_available(_udp()):
        pytest.skip("no UDP GSO on this system")
    monkeypatch.setattr(transport, "gso_available", lambda sock: gso)
    server = await start_server(tmp_path)
    try:
        alice = await connect(server, "alice", tmp_path=tmp_path)
        bob = await connect(server, "bob", tmp_path=tmp_path)
        lines = [f"burst {i} " + "x" * 200 for i in range(200)]
        for line in lines:
            alice.client.submit(line)
        await bob.wait_for(ev.MessageReceived, lambda e: e.text == lines[-1], timeout=20)
        got = [e.text for e in bob.of(ev.MessageReceived)]
        assert got == lines
        assert server.protocol.sender.gso is gso
        for c in (alice, bob):
            await c.close()
    finally:
        await server.stop(grace_s=0)
