"""The machine's raw ceiling: how many 200-byte datagrams one Python thread can `sendto` on loopback.

A plain blocking loop, no encryption, no event loop, nobody reading: the most a single-threaded Python
sender can push through the kernel here. Deliveries per second are reported as a fraction of it.
"""

from __future__ import annotations

import socket
import time

DATAGRAM_BYTES = 200


def raw_sendto_rate(duration_s: float = 1.0, size: int = DATAGRAM_BYTES) -> float:
    """Datagrams per second sent by a blocking `sendto` loop to a local UDP socket for `duration_s`."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        addr = rx.getsockname()
        payload = b"x" * size
        sendto = tx.sendto
        count = 0
        start = time.perf_counter()
        deadline = start + duration_s
        # Check the clock once per 1000 sends so the loop measures sendto, not perf_counter.
        while True:
            for _ in range(1000):
                sendto(payload, addr)
            count += 1000
            now = time.perf_counter()
            if now >= deadline:
                break
        return count / (now - start)
    finally:
        tx.close()
        rx.close()
