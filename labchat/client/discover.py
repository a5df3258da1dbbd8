"""`labchat --discover`: ask the LAN which labchat servers there are (docs/protocol.md section 19).

One DISCOVER datagram to a broadcast address (or one host), then a bounded wait collecting the
answers. The first login to a server found this way still pins its key as today; the fingerprint
printed beside each answer is what to compare with the one the teacher shows.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from ..protocol.discovery import PROBE_BYTES, ServerFound, encode_probe, parse_answer
from ..protocol.text import neutralize

#: Where a probe goes by default: the limited broadcast reaches every host on this segment.
BROADCAST = "255.255.255.255"
DEFAULT_WAIT_S = 1.5


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, nonce: bytes) -> None:
        self.nonce = nonce
        self.found: dict[tuple[str, int, bytes], ServerFound] = {}
        self.error: OSError | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        found = parse_answer(data, self.nonce, (addr[0], addr[1]))
        if found is not None:
            found = ServerFound(found.host, found.port, neutralize(found.name), found.public_key)
            self.found.setdefault((found.host, found.port, found.public_key), found)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.error = exc  # e.g. ICMP port unreachable from a probed host: no server there


async def discover(
    host: str = BROADCAST, port: int = 8080, wait_s: float = DEFAULT_WAIT_S
) -> list[ServerFound]:
    """Probe `host`:`port` and return the servers that answered within `wait_s`, sorted by name.

    Raises OSError when the probe cannot be sent at all (no network, broadcast not allowed).
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setblocking(False)
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
    except OSError:
        sock.close()
        raise
    nonce = os.urandom(8)
    transport, collector = await loop.create_datagram_endpoint(lambda: _Collector(nonce), sock=sock)
    try:
        probe = encode_probe(nonce)
        assert len(probe) == PROBE_BYTES
        transport.sendto(probe, (host, port))
        await asyncio.sleep(wait_s)  # a bounded listening window: answers arrive as they may
    finally:
        transport.close()
    return sorted(collector.found.values(), key=lambda f: (f.name.casefold(), f.host, f.port))


def found_record(found: ServerFound) -> dict[str, Any]:
    """One answer as `--json` prints it."""
    return {"type": "server", "name": found.name, "host": found.host, "port": found.port,
            "fingerprint": found.fingerprint}  # fmt: skip


def found_line(found: ServerFound) -> str:
    """One answer as `--plain` and the terminal print it: what to type, then what to compare."""
    where = f"[{found.host}]:{found.port}" if ":" in found.host else f"{found.host}:{found.port}"
    return f"{found.name}  {where}  {found.fingerprint}"
