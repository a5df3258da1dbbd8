"""The server's asyncio shell: one UDP socket in front of a `Relay`.

Everything interesting happens in relay.py; this file only moves bytes and time, in aioquic's order:
feed each datagram, and once per event-loop iteration flush (commit, fan out, send) and re-arm the one
timer. Flushing once per iteration instead of once per datagram is what batches a burst: many messages
are committed in one transaction and packed into one datagram per recipient.

Password hashing (scrypt) runs in a thread pool so that a login never stalls the room.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

from ..protocol.channel import Address
from .accounts import PasswordCheck
from .relay import Relay

log = logging.getLogger(__name__)

#: How often rejected-datagram counts are summarised in the log (a flood must not flood the log).
DROP_SUMMARY_INTERVAL_S = 5.0


class ServerError(Exception):
    """The server cannot start (address in use, bad address); one line for the user."""


class RelayProtocol(asyncio.DatagramProtocol):
    """Feeds datagrams to the relay and sends what it produces."""

    def __init__(self, relay: Relay, clock: Callable[[], float] = time.time) -> None:
        self.relay = relay
        self.clock = clock
        self.transport: asyncio.DatagramTransport | None = None
        self._loop = asyncio.get_running_loop()
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="scrypt")
        self._summary_task: asyncio.Task[None] | None = None
        self.internal_errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._summary_task = self._loop.create_task(self._summarise_drops())

    def datagram_received(
        self, data: bytes, addr: tuple[str, int] | tuple[str, int, int, int]
    ) -> None:
        try:
            self.relay.receive_datagram(data, (addr[0], addr[1]), self.clock())
        except Exception:
            # A bug, not bad input (bad input is dropped inside the relay). Log it loudly, keep serving
            # everyone else: one datagram must never take the room down.
            self.internal_errors += 1
            log.exception("internal error while handling a datagram from %s", addr[0])
        self.schedule_flush()

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from earlier sends (a client that vanished): its timeout will notice.
        log.debug("socket error: %s", exc)

    def schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        now = self.clock()
        for check in self.relay.password_checks():
            future = self._loop.run_in_executor(self._executor, check.run)
            future.add_done_callback(self._login_checked)
        if self.transport is not None:
            sendto = self.transport.sendto
            for datagram, addr in self.relay.datagrams_to_send(now):
                sendto(datagram, addr)
        self._rearm(now)

    def _login_checked(self, future: asyncio.Future[PasswordCheck]) -> None:
        try:
            self.relay.complete_login(future.result(), self.clock())
        except asyncio.CancelledError:
            return
        except Exception:
            self.internal_errors += 1
            log.exception("internal error while completing a login")
        self.schedule_flush()

    def _rearm(self, now: float) -> None:
        deadline = self.relay.next_timer()
        if self._timer is not None:
            if (
                deadline is not None
                and abs(self._timer.when() - (self._loop.time() + deadline - now)) < 1e-3
            ):
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self._loop.call_later(max(0.0, deadline - now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self.relay.handle_timer(self.clock())
        except Exception:
            self.internal_errors += 1
            log.exception("internal error in a timer")
        self.flush()

    async def _summarise_drops(self) -> None:
        last = asdict(self.relay.channel.stats)
        last_bad = self.relay.stats.bad_packets + self.relay.stats.bad_messages
        while True:
            await asyncio.sleep(DROP_SUMMARY_INTERVAL_S)
            now_stats = asdict(self.relay.channel.stats)
            bad = self.relay.stats.bad_packets + self.relay.stats.bad_messages
            deltas = {
                k: v - last.get(k, 0)
                for k, v in now_stats.items()
                if isinstance(v, int) and k not in ("handshakes",) and v - last.get(k, 0) > 0
            }
            if bad > last_bad:
                deltas["bad_packets"] = bad - last_bad
            if deltas:
                summary = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(deltas.items()))
                log.warning(
                    "dropped datagrams in the last %.0f s: %s", DROP_SUMMARY_INTERVAL_S, summary
                )
            last, last_bad = now_stats, bad

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._summary_task is not None:
            self._summary_task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.transport is not None:
            self.transport.close()


class RelayServer:
    """A running server: `address`, and `stop()` which tells clients it is going away."""

    def __init__(self, protocol: RelayProtocol) -> None:
        self.protocol = protocol
        self.relay = protocol.relay

    @property
    def address(self) -> Address:
        assert self.protocol.transport is not None
        sockname = self.protocol.transport.get_extra_info("sockname")
        return (sockname[0], sockname[1])

    async def stop(self, grace_s: float = 0.5) -> None:
        """Tell every client the server is shutting down, give the notices a moment to go out, close."""
        self.relay.shutdown(self.protocol.clock())
        self.protocol.flush()
        if self.relay.sessions and grace_s > 0:
            await asyncio.sleep(
                grace_s
            )  # a bounded grace period for retransmissions, not a test sleep
            self.protocol.flush()
        self.protocol.close()
        self.relay.store.close()


async def serve(host: str, port: int, relay: Relay) -> RelayServer:
    """Bind `host:port` (port 0: any free port) and start relaying.

    Raises:
        ServerError: the address is in use, not ours, or not an address.
    """
    loop = asyncio.get_running_loop()
    try:
        _, protocol = await loop.create_datagram_endpoint(
            lambda: RelayProtocol(relay), local_addr=(host, port)
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ServerError(
                f"UDP port {port} on {host} is already in use: is another server running?"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ServerError(f"{host} is not an address of this machine") from None
        if exc.errno == errno.EACCES:
            raise ServerError(f"no permission to use port {port}: use 1024 or above") from None
        raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return RelayServer(protocol)
