"""The server end of the labchat channel: every session of one server, created only for a
well-formed HELLO, bounded in number, with cookies under load and the 3x anti-amplification rule.

A session sends only to its validated address and moves only after path validation (a sealed
PATH_CHALLENGE answered from the new address, docs/protocol.md 4.6): a datagram copied or sent from
elsewhere is processed but moves nothing, and its source gets at most 3x what it sent. Sessions
that do not log in are bounded in time and per host (4.7); the layer above reports logins through
`mark_authenticated` and collects the sessions the channel forgot through `expired_sessions`.

The datagram layout and the shared pieces (config, stats, events, replay window) are in channel.py.
"""

from __future__ import annotations

import heapq
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.hazmat.primitives import constant_time, hashes, hmac

from labchat.protocol.channel_common import (
    _PATH_CHALLENGE_HEADER,
    ANTI_AMPLIFICATION_FACTOR,
    COOKIE_BYTES,
    COOKIE_MAC_BYTES,
    DATA_OVERHEAD_BYTES,
    EPHEMERAL_PREFIX_BYTES,
    HEADER_BYTES,
    HELLO_MIN_BYTES,
    MAX_QUEUED_DATAGRAMS,
    PATH_DATAGRAM_BYTES,
    PATH_TOKEN_BYTES,
    PROLOGUE,
    PROTOCOL_NAME,
    SESSION_ID_BYTES,
    WELCOME_BYTES,
    Address,
    ChannelConfig,
    ChannelData,
    ChannelStats,
    DatagramKind,
    _count,
    _Drop,
    _header,
    _parse_header,
    _Receiver,
    _Sender,
)
from labchat.protocol.discovery import encode_answer, parse_probe
from labchat.protocol.errors import DecodeError, LocalProtocolError
from labchat.protocol.noise import (
    DH_LEN_BYTES,
    HandshakeState,
    KeyPair,
    Rng,
)

#: LAN probes answered per second in all, and the burst (docs/protocol.md 19.1).
DISCOVER_RATE_PER_S = 20.0


@dataclass(slots=True)
class _TokenBucket:
    rate_per_s: float
    burst: float
    tokens: float
    updated_at: float | None = None

    def take(self, now: float) -> bool:
        if self.updated_at is not None:
            elapsed = max(0.0, now - self.updated_at)
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate_per_s)
        self.updated_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class _AddressState:
    """Per source host: rate buckets and the anti-amplification budget until it is proven."""

    hello_bucket: _TokenBucket
    reset_bucket: _TokenBucket
    received_bytes: int = 0
    sent_bytes: int = 0
    validated: bool = False


@dataclass(slots=True)
class _Path:
    """An address a session's client may have moved to, until it answers our challenge."""

    token: bytes
    received_bytes: int = 0
    """From this address for this session: the 3x budget for what we may send it."""
    sent_bytes: int = 0
    challenged_at: float | None = None


@dataclass(slots=True)
class _Session:
    session_id: bytes
    addr: Address
    """The validated address: everything for the session goes here (docs/protocol.md 4.6)."""
    hello_key: tuple[Address, bytes]
    welcome: bytes
    sender: _Sender
    receiver: _Receiver
    deadline: float
    """Half-open: forgotten at this time unless confirmed by a DATA."""
    prelogin_deadline: float
    """Confirmed but not authenticated: forgotten at this time (4.7)."""
    newest: Address
    """Source of the DATA with the highest counter so far: where the client seems to be now."""
    paths: dict[Address, _Path] | None = None
    """Addresses under validation, oldest first; None when there are none (the usual case)."""
    confirmed: bool = False
    authenticated: bool = False


class ServerChannel:
    """All sessions of one server. State is created only for a well-formed HELLO, and bounded."""

    def __init__(
        self, static_private_key: bytes, config: ChannelConfig | None = None, rng: Rng = os.urandom
    ) -> None:
        self._static = KeyPair.from_private(static_private_key)
        self.config = config if config is not None else ChannelConfig()
        self._rng = rng
        self._cookie_secret = rng(32)
        self._sessions: dict[bytes, _Session] = {}
        self._half_open: OrderedDict[bytes, None] = OrderedDict()  # creation order = deadline order
        self._hello_index: dict[tuple[Address, bytes], bytes] = {}
        self._addresses: OrderedDict[str, _AddressState] = OrderedDict()
        # Sessions whose AEAD contexts may be built, least recently used first, with the time of that
        # use; the timer frees the idle ones beyond `cipher_keep_sessions` (see ChannelConfig).
        self._hot: OrderedDict[bytes, float] = OrderedDict()
        burst = self.config.cookie_hello_burst
        self._load_bucket = _TokenBucket(self.config.cookie_hello_rate_per_s, burst, burst)
        self._outbox: list[tuple[bytes, Address]] = []
        # Confirmed sessions not yet authenticated: how many per host of their HELLO, and their
        # deadlines (a heap: sessions are confirmed in another order than they were created).
        self._prelogin_hosts: dict[str, int] = {}
        self._prelogin_deadlines: list[tuple[float, bytes]] = []
        self._expired: list[bytes] = []
        self.stats = ChannelStats()
        #: The name a DISCOVER is answered with (docs/protocol.md 19), or None: discovery off.
        self.discovery_name: str | None = None
        self._discover_bucket = _TokenBucket(DISCOVER_RATE_PER_S, DISCOVER_RATE_PER_S, DISCOVER_RATE_PER_S)

    @property
    def public_key(self) -> bytes:
        return self._static.public

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> ChannelData | None:
        """Process one datagram. Never raises on hostile bytes: drops are counted in `stats`."""
        try:
            kind = _parse_header(data)
            if kind is DatagramKind.HELLO:
                self._on_hello(data, addr, now)
                return None
            if kind is DatagramKind.DATA:
                return self._on_data(data, addr, now)
            if kind is DatagramKind.PATH_RESPONSE:
                self._on_path_response(data, addr, now)
                return None
            if kind is DatagramKind.DISCOVER:
                self._on_discover(data, addr, now)
                return None
            raise _Drop("unexpected")
        except _Drop as drop:
            _count(self.stats, drop.reason)
        except DecodeError:  # e.g. a low-order ephemeral key in a HELLO
            self.stats.malformed += 1
        return None

    def _on_discover(self, data: bytes, addr: Address, now: float) -> None:
        """Answer a LAN probe with our name and key (19.1): never larger than the probe, at most
        20 answers a second in all, nothing when discovery is off."""
        nonce = parse_probe(data)
        if nonce is None:
            raise _Drop("malformed")
        if self.discovery_name is None or addr[1] == 0:
            raise _Drop("unexpected")
        if not self._discover_bucket.take(now):
            self.stats.discover_rate_limited += 1
            return
        self.stats.discover_answered += 1
        self._outbox.append((encode_answer(nonce, self._static.public, self.discovery_name), addr))

    def seal(self, session_id: bytes, payload: bytes, now: float) -> tuple[bytes, Address]:
        """A DATA datagram for a confirmed session, and the address to send it to."""
        session = self._sessions.get(session_id)
        if session is None or not session.confirmed:
            raise LocalProtocolError("unknown session")
        self._touch(session_id, now)
        return session.sender.seal(session_id, payload, now, self.config), session.addr

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._outbox = self._outbox, []
        return out

    def close(self, session_id: bytes) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            self._half_open.pop(session_id, None)
            self._hot.pop(session_id, None)
            self._hello_index.pop(session.hello_key, None)
            self._leave_prelogin(session)

    def mark_authenticated(self, session_id: bytes) -> None:
        """The layer above logged this session in: it is no longer bound by the pre-login limits
        (10 s after WELCOME, 16 per host; docs/protocol.md 4.7), which the channel cannot judge
        by itself because it never reads a payload. Unknown sessions are ignored."""
        session = self._sessions.get(session_id)
        if session is not None and not session.authenticated:
            self._leave_prelogin(session)
            session.authenticated = True

    def expired_sessions(self) -> list[bytes]:
        """Confirmed sessions that `handle_timer` forgot because they never logged in, since the
        last call: the layer above drops its own state for them (their DATA now gets a RESET)."""
        out, self._expired = self._expired, []
        return out

    def address(self, session_id: bytes) -> Address | None:
        """The session's validated address (where seal() sends), or None for an unknown session."""
        session = self._sessions.get(session_id)
        return session.addr if session is not None else None

    def is_open(self, session_id: bytes) -> bool:
        """True for a confirmed session, i.e. exactly when seal() would accept it."""
        session = self._sessions.get(session_id)
        return session is not None and session.confirmed

    def next_timer(self) -> float | None:
        """The first half-open or pre-login deadline, or when idle AEAD contexts are due to be freed."""
        deadline = None
        for session_id in self._half_open:
            deadline = self._sessions[session_id].deadline
            break
        heap = self._prelogin_deadlines
        while heap and not self._prelogin_due(*heap[0]):
            heapq.heappop(heap)  # logged in or closed since: nothing to do at that time
        if heap:
            deadline = heap[0][0] if deadline is None else min(deadline, heap[0][0])
        if len(self._hot) > self.config.cipher_keep_sessions:
            for used_at in self._hot.values():
                free_at = used_at + self.config.cipher_idle_s
                deadline = free_at if deadline is None else min(deadline, free_at)
                break
        return deadline

    def handle_timer(self, now: float) -> None:
        """Forget half-open sessions past their deadline (a spoofed HELLO never sends DATA), and free
        the AEAD contexts of sessions gone idle."""
        self._release_idle_contexts(now)
        while self._half_open:
            session_id = next(iter(self._half_open))
            if self._sessions[session_id].deadline > now:
                break
            self.close(session_id)
            self.stats.handshakes_expired += 1
        heap = self._prelogin_deadlines
        while heap and heap[0][0] <= now:
            deadline, session_id = heapq.heappop(heap)
            if self._prelogin_due(deadline, session_id):
                self.close(session_id)
                self.stats.prelogin_expired += 1
                self._expired.append(session_id)

    # -- internals -------------------------------------------------------------------------------

    def _prelogin_due(self, deadline: float, session_id: bytes) -> bool:
        """True if this heap entry still stands for a confirmed session that has not logged in."""
        session = self._sessions.get(session_id)
        return (
            session is not None
            and not session.authenticated
            and session.confirmed
            and session.prelogin_deadline == deadline
        )

    def _leave_prelogin(self, session: _Session) -> None:
        """Stop counting a confirmed, unauthenticated session against its host's allowance."""
        if session.confirmed and not session.authenticated:
            host = session.hello_key[0][0]
            left = self._prelogin_hosts.get(host, 1) - 1
            if left > 0:
                self._prelogin_hosts[host] = left
            else:
                self._prelogin_hosts.pop(host, None)

    def _touch(self, session_id: bytes, now: float) -> None:
        """Record a use of the session's AEAD contexts (called before every seal and open, so every
        built context is in `_hot` and will be freed); past `max_cipher_sessions`, free the oldest."""
        hot = self._hot
        hot.pop(session_id, None)
        hot[session_id] = now
        if len(hot) > self.config.max_cipher_sessions:
            self._release_contexts(next(iter(hot)))

    def _release_contexts(self, session_id: bytes) -> None:
        del self._hot[session_id]
        session = self._sessions.get(session_id)
        if session is not None:
            session.sender.release_contexts()
            session.receiver.release_contexts()

    def _release_idle_contexts(self, now: float) -> None:
        """Free the contexts of sessions idle for `cipher_idle_s`, and of those that will be within a
        quarter of it: one wake-up frees a batch, so a server of idle clients wakes up at most about
        four times per `cipher_idle_s` for this, not once per keepalive."""
        hot, keep = self._hot, self.config.cipher_keep_sessions
        idle_before = now - 0.75 * self.config.cipher_idle_s
        while len(hot) > keep:
            session_id, used_at = next(iter(hot.items()))
            if used_at > idle_before:
                break
            self._release_contexts(session_id)

    def _address(self, addr: Address) -> _AddressState:
        # Keyed by host, not host:port: changing source port must not buy a fresh budget.
        host = addr[0]
        state = self._addresses.get(host)
        if state is None:
            cfg = self.config
            state = _AddressState(
                _TokenBucket(cfg.hello_rate_per_s, cfg.hello_burst, cfg.hello_burst),
                _TokenBucket(cfg.reset_rate_per_s, cfg.reset_burst, cfg.reset_burst),
            )
            self._addresses[host] = state
            while len(self._addresses) > cfg.max_tracked_addresses:
                self._addresses.popitem(last=False)
        else:
            self._addresses.move_to_end(host)
        return state

    def _can_send(self, state: _AddressState, size: int) -> bool:
        if state.validated or state.sent_bytes + size <= ANTI_AMPLIFICATION_FACTOR * state.received_bytes:
            return True
        self.stats.amplification_limited += 1
        return False

    def _send(self, datagram: bytes, addr: Address, state: _AddressState) -> bool:
        if not self._can_send(state, len(datagram)):
            return False
        state.sent_bytes += len(datagram)
        self._outbox.append((datagram, addr))
        del self._outbox[:-MAX_QUEUED_DATAGRAMS]
        return True

    def _cookie_mac(self, bucket: int, addr: Address, client_ephemeral: bytes) -> bytes:
        host = addr[0].encode("utf-8", "replace")
        mac = hmac.HMAC(self._cookie_secret, hashes.SHA256())
        mac.update(struct.pack(">IH", bucket, len(host)) + host)
        mac.update(struct.pack(">I", addr[1] & 0xFFFFFFFF) + client_ephemeral)
        return mac.finalize()[:COOKIE_MAC_BYTES]

    def _bucket(self, now: float) -> int:
        return int(now // self.config.cookie_bucket_s) & 0xFFFFFFFF

    def _make_cookie(self, addr: Address, client_ephemeral: bytes, now: float) -> bytes:
        bucket = self._bucket(now)
        return struct.pack(">I", bucket) + self._cookie_mac(bucket, addr, client_ephemeral)

    def _cookie_valid(self, cookie: bytes, addr: Address, client_ephemeral: bytes, now: float) -> bool:
        (bucket,) = struct.unpack_from(">I", cookie)
        current = self._bucket(now)
        if bucket not in (current, (current - 1) & 0xFFFFFFFF):
            return False
        expected = self._cookie_mac(bucket, addr, client_ephemeral)
        return constant_time.bytes_eq(cookie[4:], expected)

    def _on_hello(self, data: bytes, addr: Address, now: float) -> None:
        if len(data) < HELLO_MIN_BYTES or data[HEADER_BYTES] not in (0, COOKIE_BYTES):
            raise _Drop("malformed")
        start = HEADER_BYTES + 1 + data[HEADER_BYTES]
        cookie, message = data[HEADER_BYTES + 1 : start], data[start:]
        client_ephemeral = message[:DH_LEN_BYTES]
        state = self._address(addr)
        state.received_bytes += len(data)
        if not state.hello_bucket.take(now):
            raise _Drop("handshake_rate_limited")
        existing = self._hello_index.get((addr, client_ephemeral))
        if existing is not None:  # a retransmitted HELLO: same answer, no second session
            session = self._sessions[existing]
            if session.confirmed:
                raise _Drop("unexpected")
            self._send(session.welcome, addr, state)
            return
        if self._prelogin_hosts.get(addr[0], 0) >= self.config.max_prelogin_per_host:
            raise _Drop("prelogin_limited")
        rate_exceeded = not self._load_bucket.take(now)
        if not (cookie and self._cookie_valid(cookie, addr, client_ephemeral, now)) and (
            rate_exceeded or len(self._half_open) >= self.config.cookie_half_open_threshold
        ):
            reply = _header(DatagramKind.COOKIE) + client_ephemeral[:EPHEMERAL_PREFIX_BYTES]
            if self._send(reply + self._make_cookie(addr, client_ephemeral, now), addr, state):
                self.stats.cookies_sent += 1
            return
        if not self._can_send(state, WELCOME_BYTES):
            return
        self._make_room()
        handshake = HandshakeState(
            PROTOCOL_NAME, initiator=False, prologue=PROLOGUE, s=self._static, rng=self._rng
        )
        handshake.read_message(message)
        session_id = self._new_session_id()
        reply_message, split = handshake.write_message(session_id)
        if split is None:  # cannot happen for NX; keeps the type checker honest
            raise _Drop("malformed")
        welcome = _header(DatagramKind.WELCOME) + session_id + reply_message
        hello_key = (addr, client_ephemeral)
        self._sessions[session_id] = _Session(
            session_id=session_id,
            addr=addr,
            hello_key=hello_key,
            welcome=welcome,
            sender=_Sender(split[1], now),
            receiver=_Receiver(split[0]),
            deadline=now + self.config.handshake_timeout_s,
            prelogin_deadline=now + self.config.prelogin_timeout_s,
            newest=addr,
        )
        self._half_open[session_id] = None
        self._hello_index[hello_key] = session_id
        self.stats.handshakes += 1
        self._send(welcome, addr, state)

    def _make_room(self) -> None:
        if len(self._half_open) >= self.config.max_half_open:
            self.close(next(iter(self._half_open)))
        if len(self._sessions) >= self.config.max_sessions:
            if not self._half_open:
                raise _Drop("session_table_full")
            self.close(next(iter(self._half_open)))

    def _new_session_id(self) -> bytes:
        for _ in range(16):
            session_id = self._rng(SESSION_ID_BYTES)
            if session_id not in self._sessions:
                return session_id
        raise LocalProtocolError("the random source keeps repeating session ids")

    def _on_data(self, data: bytes, addr: Address, now: float) -> ChannelData:
        if len(data) < DATA_OVERHEAD_BYTES:
            raise _Drop("malformed")
        session_id = data[HEADER_BYTES : HEADER_BYTES + SESSION_ID_BYTES]
        session = self._sessions.get(session_id)
        if session is None:
            state = self._address(addr)
            state.received_bytes += len(data)
            if state.reset_bucket.take(now):
                if self._send(_header(DatagramKind.RESET) + session_id, addr, state):
                    self.stats.resets_sent += 1
            else:
                self.stats.resets_rate_limited += 1
            raise _Drop("unknown_session")
        self._touch(session_id, now)
        payload, newest = session.receiver.open(data, now, self.config)
        if not session.confirmed:
            self._confirm(session)
        if addr != session.addr:
            self._on_other_path(session, len(data), addr, newest, now)
        elif newest:
            session.newest = addr
        return ChannelData(session_id, session.addr, payload)

    def _confirm(self, session: _Session) -> None:
        """The first authenticated DATA: its sender holds the keys the WELCOME carried, so the
        HELLO's address (where the WELCOME went) is validated, whatever this DATA's source."""
        host = session.hello_key[0][0]
        if not session.authenticated:
            count = self._prelogin_hosts.get(host, 0)
            if count >= self.config.max_prelogin_per_host:
                self.close(session.session_id)
                raise _Drop("prelogin_limited")
            self._prelogin_hosts[host] = count + 1
            heapq.heappush(self._prelogin_deadlines, (session.prelogin_deadline, session.session_id))
        session.confirmed = True
        session.welcome = b""  # only ever resent to an unconfirmed session's HELLO
        self._half_open.pop(session.session_id, None)
        self._address(session.addr).validated = True

    def _on_other_path(self, session: _Session, size: int, addr: Address, newest: bool, now: float) -> None:
        """Authenticated DATA from an address other than the validated one: count it toward that
        address's budget and, if it is the newest DATA, challenge the address (4.6, step 1)."""
        paths = session.paths
        path = paths.get(addr) if paths is not None else None
        if path is None:
            if not newest:
                return  # an old datagram from a new address says nothing about where the client is
            if paths is None:
                paths = session.paths = {}
            path = paths[addr] = _Path(self._rng(PATH_TOKEN_BYTES))
            while len(paths) > self.config.max_pending_paths:
                del paths[next(iter(paths))]
        path.received_bytes += size
        if not newest:
            return
        session.newest = addr
        last = path.challenged_at
        if last is not None and now - last < self.config.path_challenge_interval_s:
            return
        if path.sent_bytes + PATH_DATAGRAM_BYTES > ANTI_AMPLIFICATION_FACTOR * path.received_bytes:
            self.stats.amplification_limited += 1
            return
        challenge = session.sender.seal(
            session.session_id, path.token, now, self.config, _PATH_CHALLENGE_HEADER
        )
        path.sent_bytes += len(challenge)
        path.challenged_at = now
        self._outbox.append((challenge, addr))
        del self._outbox[:-MAX_QUEUED_DATAGRAMS]
        self.stats.path_challenges_sent += 1

    def _on_path_response(self, data: bytes, addr: Address, now: float) -> None:
        """A PATH_RESPONSE proves its source receives the session's datagrams if it carries the
        token we sent to that very address; the session moves there unless its client is still
        (newest DATA) at the validated address (4.6, step 3)."""
        if len(data) != PATH_DATAGRAM_BYTES:
            raise _Drop("malformed")
        session_id = data[HEADER_BYTES : HEADER_BYTES + SESSION_ID_BYTES]
        session = self._sessions.get(session_id)
        if session is None or not session.confirmed:
            raise _Drop("unknown_session")  # no RESET: only DATA earns one
        self._touch(session_id, now)
        token, _ = session.receiver.open(data, now, self.config)
        paths = session.paths
        path = paths.get(addr) if paths is not None else None
        if paths is None or path is None or not constant_time.bytes_eq(token, path.token):
            self.stats.path_response_mismatch += 1
            return
        self.stats.path_validated += 1
        if session.newest != session.addr:
            session.addr = addr
            session.paths = None
            self._address(addr).validated = True
            self.stats.migrations += 1
        else:
            del paths[addr]
            if not paths:
                session.paths = None
