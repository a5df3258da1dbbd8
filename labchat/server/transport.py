"""The server's asyncio shell: one UDP socket in front of a `Relay`.

Everything interesting happens in relay.py; this file only moves bytes and time, in aioquic's order:
feed each datagram, and once per event-loop iteration flush (commit, fan out, send) and re-arm the one
timer. Flushing once per iteration instead of once per datagram is what batches a burst: many messages
are committed in one transaction and packed into one datagram per recipient.

Where the event loop cannot watch a socket (Windows' proactor loop has no `add_reader`), asyncio's
datagram transport reads it instead: one callback per datagram, flushed once per pass of the loop, so
a burst is still batched, only with a little more overhead per datagram.

Password hashing (scrypt) runs in a thread pool so that a login never stalls the room, and so do the
database's checkpoints (store.py says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from ..deadline_timer import DeadlineTimer
from ..i18n import _
from ..protocol.channel import Address
from .accounts import PasswordCheck
from .files import FileSync, prune_files_regularly
from .relay import Relay
from .retention import HistoryPruner, prune_regularly
from .store import StoreError

log = logging.getLogger(__name__)

#: How often rejected-datagram counts are summarised in the log (a flood must not flood the log).
DROP_SUMMARY_INTERVAL_S = 5.0
#: How often the database's WAL is checkpointed, on a thread of its own (see store.py): often enough
#: that the WAL stays a few MB even at thousands of messages per second.
CHECKPOINT_INTERVAL_S = 1.0


#: Linux's UDP_SEGMENT socket option (generic segmentation offload for UDP, Linux 4.18+); Python 3.11's
#: socket module does not name it.
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
#: The kernel's limit on segments in one GSO send (UDP_MAX_SEGMENTS).
GSO_MAX_SEGMENTS = 64
#: Bytes in one GSO send: under the 65,507-byte payload of one IPv4 UDP datagram.
GSO_MAX_BYTES = 65000


def gso_available(sock: socket.socket) -> bool:
    """True where the kernel segments UDP for us: Linux only, detected once per socket by reading the
    option (an old kernel refuses it). Windows and macOS never try."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.getsockopt(socket.SOL_UDP, UDP_SEGMENT)
    except OSError:
        return False
    return True


class DatagramSender:
    """Sends one flush's datagrams; where several in a row go to one peer, in one system call.

    A file transfer, a history replay or a burst of fan-out puts several full datagrams for one peer
    in one flush. With UDP GSO they leave in one `sendmsg` with UDP_SEGMENT: the kernel cuts the buffer
    into datagrams of the given size (only the last may be shorter), so the peer receives exactly the
    datagrams it would have otherwise, for one system call instead of many. Where GSO is missing, or a
    send with it fails in a way that says the path cannot do it, every datagram goes alone, as before.
    """

    def __init__(self, sock: socket.socket, sendto: Callable[[bytes, Address], object], *, gso: bool) -> None:
        self.sock = sock
        self.sendto = sendto
        self.gso = gso
        self.errors = 0
        self.gso_sends = 0  # sendmsg calls that carried more than one datagram
        self.gso_datagrams = 0  # datagrams they carried

    def send(self, datagrams: list[tuple[bytes, Address]]) -> None:
        if not self.gso:
            for datagram, addr in datagrams:
                self._send_one(datagram, addr)
            return
        i, n = 0, len(datagrams)
        while i < n:
            first, addr = datagrams[i]
            size = len(first)
            j, total = i + 1, size
            while j < n and j - i < GSO_MAX_SEGMENTS:
                datagram, to = datagrams[j]
                length = len(datagram)
                if to != addr or length > size or total + length > GSO_MAX_BYTES:
                    break
                total += length
                j += 1
                if length < size:
                    break  # only the last segment may be shorter
            if j - i == 1:
                self._send_one(first, addr)
            elif not self._send_segmented(datagrams[i:j], size, addr):
                for datagram, to in datagrams[i:j]:
                    self._send_one(datagram, to)
            i = j

    def _send_one(self, datagram: bytes, addr: Address) -> None:
        try:
            self.sendto(datagram, addr)
        except (BlockingIOError, InterruptedError):
            self.errors += 1  # the kernel's buffer is full: the link will retransmit
        except OSError as exc:
            self.errors += 1
            log.debug("cannot send to %s: %s", addr[0], exc)

    def _send_segmented(self, run: list[tuple[bytes, Address]], size: int, addr: Address) -> bool:
        """One GSO send; False (and GSO off for good) when the path refuses it, so the caller sends
        the run datagram by datagram."""
        try:
            self.sock.sendmsg(
                [b"".join(datagram for datagram, _addr in run)],
                [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))],
                0,
                addr,
            )
        except (BlockingIOError, InterruptedError):
            self.errors += len(run)  # as for a plain send: the link will retransmit
            return True
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EMSGSIZE):
                # A device without checksum offload (EIO) or a kernel that refuses the size: never again.
                log.info(_("UDP segmentation offload refused (%s); sending datagrams one by one"), exc)
                self.gso = False
                return False
            self.errors += len(run)
            log.debug("cannot send to %s: %s", addr[0], exc)
            return True
        self.gso_sends += 1
        self.gso_datagrams += len(run)
        return True


class ServerError(Exception):
    """The server cannot start (address in use, bad address); one line for the user."""


#: The server's timers fire on a 5 ms grid: with many sessions, one wake-up serves every deadline in
#: the step. Its timers (delayed ACKs of 25 ms, loss and retransmission timers of 100 ms and more,
#: 30 s timeouts) all allow that. With 1000 idle clients whose keepalives are spread out it was one
#: of the changes that took the server from 4.7 % of a core to under 2 % (docs/performance.md).
TIMER_GRID_S = 0.005

#: Channel counters of normal work, left out of the drop summary (a client moving is no drop).
_NOT_DROPS = frozenset(
    ("handshakes", "path_challenges_sent", "path_challenges_received", "path_responses_sent",
     "path_validated", "migrations")
)  # fmt: skip
#: Datagrams read per wake-up before flushing: enough to batch a burst (one commit, one datagram per
#: recipient), few enough that timers and new sockets are never starved.
MAX_READ_BATCH = 256
#: Where asyncio's datagram transport reads for us (no add_reader), how long datagrams are gathered
#: before one flush: a burst is committed and answered together, for at most this much latency.
TRANSPORT_BATCH_S = 0.001
_RECV_BYTES = 2048  # anything longer than a 1200-byte datagram is junk; reading 2048 tells us so


#: A peer with more datagrams than this in one read batch is bursting (a file streaming in): the
#: other peers' datagrams are handled and answered ahead of the rest of the burst (`_on_readable`).
BURST_DATAGRAMS = 8
#: A burst's datagrams handled between two looks at the socket: ~0.5 ms of decrypting and writing.
BURST_SLICE = 16


class RelayProtocol:
    """Owns the server's non-blocking UDP socket; feeds datagrams to the relay and sends its output.

    It reads the socket dry on each wake-up (`recvfrom` until it would block) and flushes once after
    the batch, instead of asyncio's one-callback-per-datagram: under load that turns N messages into
    one transaction and one datagram per recipient, and costs one event-loop pass, not N.
    """

    def __init__(self, relay: Relay, sock: socket.socket, clock: Callable[[], float] = time.time) -> None:
        self.relay = relay
        self.clock = clock
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._flush_scheduled = False
        self._timer = DeadlineTimer(self._loop, self._on_timer, grid_s=TIMER_GRID_S)
        # As many workers as the relay lets checks run at once: the rest wait in its login queue,
        # where their clients are told their place, not in the pool's invisible one.
        workers = max(1, relay.config.login.parallel_checks)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scrypt")
        self._checkpointer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        # Verified uploads are flushed to disk here, one at a time, never on the event loop (21.7).
        self._file_io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="file-sync")
        relay.files.defer_sync = True
        self.checkpoints = 0
        self.last_checkpoint = (0, 0)  # (frames in the WAL, frames copied), as Store.checkpoint says
        self.checkpointed = asyncio.Event()  # set after each checkpoint: lets a test wait for one
        self.internal_errors = 0
        self.send_errors = 0
        self._closed = False
        #: Called after every flush (the cluster bridge takes the relay's outbox there).
        self.after_flush: list[Callable[[], None]] = []
        sock.setblocking(False)
        self._transport: asyncio.DatagramTransport | None = None
        self.sender = DatagramSender(sock, sock.sendto, gso=gso_available(sock))
        try:
            self._loop.add_reader(sock.fileno(), self._on_readable)
            #: True on a loop without add_reader: `attach_transport()` must be awaited (serve() does).
            self.needs_transport = False
        except NotImplementedError:
            self.needs_transport = True
        self._summary_task: asyncio.Task[None] | None = self._loop.create_task(self._summarise_drops())
        relay.store.checkpoint_in_background()
        self._checkpoint_task = self._loop.create_task(self._checkpoint_regularly())
        self.pruner = HistoryPruner(relay.store, relay.rooms, relay.config.retention)
        self.pruned = asyncio.Event()  # set after each round of pruning: lets a test wait for one
        self._prune_task = self._loop.create_task(prune_regularly(self.pruner, self.clock, self.pruned))
        self.files_pruned = asyncio.Event()  # set after each round of file retention
        self._files_task = self._loop.create_task(
            prune_files_regularly(relay.files, self.clock, self.files_pruned)
        )

    def _on_readable(self) -> None:
        """Read the socket dry (at most MAX_READ_BATCH datagrams), feed the relay, flush once.

        Fair to the quiet (21.7): a batch is answered in one flush, so a chat line read amid a
        peer's burst (a file streaming in) would wait for the whole burst to be decrypted and
        written. Once a peer has sent over BURST_DATAGRAMS of the batch, the rest of its datagrams
        wait in `burst` and are handled BURST_SLICE at a time; between slices the socket is read
        again, and what the other peers sent is handled and answered (flushed) at once, ahead of
        the rest of the burst. Each peer's datagrams keep their order.
        """
        recvfrom = self.sock.recvfrom
        receive = self.relay.receive_datagram
        now = self.clock()
        counts: dict[Address, int] = {}
        bursting: set[Address] = set()
        burst: deque[tuple[bytes, Address]] = deque()
        answered: set[Address] = set()  # peers handled since the last flush
        reads = MAX_READ_BATCH
        while True:
            while reads > 0:
                reads -= 1
                try:
                    data, raw = recvfrom(_RECV_BYTES)
                except (BlockingIOError, InterruptedError):
                    reads += 1
                    break
                except OSError as exc:
                    # ICMP errors from earlier sends (a client that vanished): its timeout will notice.
                    log.debug("socket error: %s", exc)
                    continue
                addr = (raw[0], raw[1])
                if addr in bursting:
                    burst.append((data, addr))
                    continue
                n = counts[addr] = counts.get(addr, 0) + 1
                if n > BURST_DATAGRAMS:
                    bursting.add(addr)
                    burst.append((data, addr))
                    continue
                self._receive(receive, data, addr, now)
                answered.add(addr)
            if not burst:
                break
            if not answered <= bursting:
                self.flush()  # the quiet peers' answers go before the rest of the burst
            answered.clear()
            for _slice in range(min(BURST_SLICE, len(burst)) if reads else len(burst)):
                data, addr = burst.popleft()
                self._receive(receive, data, addr, now)
        self.flush()

    def _receive(self, receive: Callable[[bytes, Address, float], None], data: bytes, addr: Address,
                 now: float) -> None:
        try:
            receive(data, addr, now)
        except Exception:
            # A bug, not bad input (bad input is dropped inside the relay). Log it loudly, keep
            # serving everyone else: one datagram must never take the room down.
            self.internal_errors += 1
            log.exception("internal error while handling a datagram from %s", addr[0])

    async def attach_transport(self) -> None:
        """Let asyncio's datagram transport own the socket (for a loop without add_reader)."""
        transport, _protocol = await self._loop.create_datagram_endpoint(
            lambda: _RelayDatagrams(self), sock=self.sock
        )
        self._transport = transport
        # The transport owns the socket now (no add_reader: not Linux): plain sends through it.
        self.sender = DatagramSender(self.sock, transport.sendto, gso=False)
        self.needs_transport = False

    def on_datagram(self, data: bytes, addr: Any) -> None:
        """One datagram from asyncio's transport: fed now, flushed once this pass of the loop."""
        try:
            self.relay.receive_datagram(data, (addr[0], addr[1]), self.clock())
        except Exception:
            self.internal_errors += 1
            log.exception("internal error while handling a datagram from %s", addr[0])
        if not self._flush_scheduled:
            # The transport hands over one datagram per pass of the loop: flushing after each would
            # commit and answer each message alone. Waiting a moment gathers a burst into one flush,
            # as reading the socket dry does where add_reader exists.
            self._flush_scheduled = True
            self._loop.call_later(TRANSPORT_BATCH_S, self.flush)

    def schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._closed:
            return  # a password check that finished after close() has nowhere to go
        now = self.clock()
        for check in self.relay.password_checks():
            future = self._loop.run_in_executor(self._executor, check.run)
            future.add_done_callback(self._login_checked)
        for job in self.relay.files.sync_jobs():
            self._loop.run_in_executor(self._file_io, job.run).add_done_callback(self._file_synced)
        sender = self.sender
        errors = sender.errors
        sender.send(self.relay.datagrams_to_send(now))
        self.send_errors += sender.errors - errors
        self._rearm(now)
        for hook in self.after_flush:
            hook()
        if self.relay.files.waiting and self.relay.files.pump_due():
            # Downloads held back to a burst per flush go on after the socket is read (21.7).
            self.schedule_flush()

    def _file_synced(self, future: asyncio.Future[FileSync]) -> None:
        if self._closed or future.cancelled():
            return  # the next start finds the partial file whole and finishes it on the next offer
        try:
            self.relay.files.synced(future.result(), self.clock())
        except Exception:
            self.internal_errors += 1
            log.exception("internal error while keeping a file")
        self.schedule_flush()

    def _login_checked(self, future: asyncio.Future[PasswordCheck]) -> None:
        if self._closed:
            return
        try:
            self.relay.complete_login(future.result(), self.clock())
        except asyncio.CancelledError:
            return
        except Exception:
            self.internal_errors += 1
            log.exception("internal error while completing a login")
        self.schedule_flush()

    def _rearm(self, now: float) -> None:
        self._timer.set(self.relay.next_timer(), now)

    def _on_timer(self) -> None:
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
                if isinstance(v, int) and k not in _NOT_DROPS and v - last.get(k, 0) > 0
            }
            if bad > last_bad:
                deltas["bad_packets"] = bad - last_bad
            if deltas:
                summary = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(deltas.items()))
                log.warning(_("dropped datagrams in the last %.0f s: %s"), DROP_SUMMARY_INTERVAL_S, summary)
            last, last_bad = now_stats, bad

    async def _checkpoint_regularly(self) -> None:
        store = self.relay.store
        failing = False
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL_S)
            try:
                result = await self._loop.run_in_executor(self._checkpointer, store.checkpoint)
            except StoreError as exc:
                # The room goes on (commits still work); the WAL grows until the disk recovers.
                # Said once, not every second.
                if not failing:
                    log.warning(_("%s; retrying every %g s"), exc, CHECKPOINT_INTERVAL_S)
                failing = True
                continue
            if failing:
                log.warning(_("database checkpoints work again"))
                failing = False
            self.checkpoints += 1
            self.last_checkpoint = result
            self.checkpointed.set()

    def close(self) -> None:
        self._closed = True
        self._timer.cancel()
        if self._summary_task is not None:
            self._summary_task.cancel()
        self._checkpoint_task.cancel()
        self._prune_task.cancel()
        self._files_task.cancel()
        # Wait for a checkpoint under way (milliseconds): the store closes its connection next.
        self._checkpointer.shutdown(wait=True, cancel_futures=True)
        self._executor.shutdown(wait=False, cancel_futures=True)
        # A file being flushed is kept (a disk's moments): the next start finds it stored.
        self._file_io.shutdown(wait=True)
        try:
            self.relay.files.finish_syncs(self.clock())
        except Exception:
            log.exception("internal error while keeping files at shutdown")
        if self._transport is not None:
            self._transport.close()  # closes the socket too
            return
        with contextlib.suppress(ValueError, OSError, NotImplementedError):
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()


class _RelayDatagrams(asyncio.DatagramProtocol):
    """The server's socket on a loop without add_reader (Windows): asyncio reads, the relay is fed."""

    def __init__(self, protocol: RelayProtocol) -> None:
        self._protocol = protocol

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._protocol.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from earlier sends (a client that vanished): its timeout will notice.
        log.debug("socket error: %s", exc)


class RelayServer:
    """A running server: `address`, and `stop()` which tells clients it is going away."""

    def __init__(self, protocol: RelayProtocol) -> None:
        self.protocol = protocol
        self.relay = protocol.relay

    @property
    def address(self) -> Address:
        sockname = self.protocol.sock.getsockname()
        return (sockname[0], sockname[1])

    async def stop(self, grace_s: float = 0.5) -> None:
        """Tell every client the server is shutting down, give the notices a moment to go out, close."""
        self.relay.shutdown(self.protocol.clock())
        self.protocol.flush()
        if self.relay.sessions and grace_s > 0:
            await asyncio.sleep(grace_s)  # a bounded grace period for retransmissions, not a test sleep
            self.protocol.flush()
        self.protocol.close()
        self.relay.files.close()
        self.relay.store.close()


async def serve(host: str, port: int, relay: Relay, *, reuse_port: bool = False) -> RelayServer:
    """Bind `host:port` (port 0: any free port) and start relaying.

    `reuse_port`: share the port with other relays of one cluster (SO_REUSEPORT, `--relays`): the
    kernel then spreads clients over the sockets by a hash of their address and port.

    Raises:
        ServerError: the address is in use, not ours, or not an address.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
        family, _type, _proto, _name, sockaddr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
    except (OSError, UnicodeError) as exc:
        raise ServerError(
            _("cannot listen on {address}: {reason}").format(
                address=f"{host}:{port}", reason=getattr(exc, "strerror", None) or exc
            )
        ) from None
    try:
        # Room for a burst: 100 clients answering at once must not overflow the kernel's queue.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        if hasattr(socket, "SIO_UDP_CONNRESET"):
            # Windows reports an ICMP "port unreachable" (a client that vanished) as an error on the
            # next receive, which would break the read loop: a UDP server wants none of that.
            with contextlib.suppress(OSError):
                sock.ioctl(socket.SIO_UDP_CONNRESET, False)  # type: ignore[attr-defined]
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServerError(
                _("UDP port {port} on {host} is already in use: is another server running?").format(
                    port=port, host=host
                )
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ServerError(_("{host} is not an address of this machine").format(host=host)) from None
        if exc.errno == errno.EACCES:
            text = _("no permission to use port {port}: use 1024 or above").format(port=port)
            raise ServerError(text) from None
        reason = exc.strerror or exc
        text = _("cannot listen on {address}: {reason}").format(address=f"{host}:{port}", reason=reason)
        raise ServerError(text) from None
    protocol = RelayProtocol(relay, sock)
    if protocol.needs_transport:
        await protocol.attach_transport()
    return RelayServer(protocol)
