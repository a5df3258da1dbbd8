"""The labchat secure channel: Noise_NX_25519_ChaChaPoly_SHA256 over UDP datagrams, sans-I/O.

Why this shape: the client has no long-term key (people log in with a password *inside* the
channel), while the server must prove who it is. In Noise NX the server sends its static key
inside the handshake, authenticated by `es`, so a client can pin it on first contact and detect a
change later, as SSH does, in one round trip. Everything here is pure state: the caller feeds in
datagrams and the time, and takes out datagrams, payloads and events. No sockets, no clock, and
the randomness is injectable so tests are deterministic.

Datagram layout (integers big-endian); every datagram starts with magic b"LC", version, kind:

    HELLO   c->s  hdr | cookie_len u8 | cookie 0/24 | NX msg 1 (e, zero padding to >= 128 bytes)
    COOKIE  s->c  hdr | first 8 bytes of the client ephemeral | cookie 24
    WELCOME s->c  hdr | session_id 8 | NX msg 2 (e, ee, s, es, encrypted payload = session_id)
    DATA    both  hdr | session_id 8 | key_epoch u8 | counter u64 | AEAD(payload), AD = first 21
    RESET   s->c  hdr | session_id 8

docs/security.md explains the threat model behind each rule.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives import constant_time, hashes, hmac

from labchat.protocol.errors import DecodeError, LocalProtocolError
from labchat.protocol.noise import (
    DH_LEN_BYTES,
    TAG_LEN_BYTES,
    CipherState,
    HandshakeState,
    KeyPair,
    Rng,
)

Address = tuple[str, int]

PROTOCOL_NAME = "Noise_NX_25519_ChaChaPoly_SHA256"
#: Hashed into the handshake, so a peer speaking another protocol (or version) cannot complete it.
PROLOGUE = b"labchat/1"
MAGIC = b"LC"
VERSION = 1


class Kind(IntEnum):
    """The datagram kinds (byte 3 of every datagram)."""

    HELLO = 1
    COOKIE = 2
    WELCOME = 3
    DATA = 4
    RESET = 5


#: Largest datagram either side sends or accepts: fits the IPv6 minimum MTU with room for headers.
MAX_DATAGRAM_BYTES = 1200
HEADER_BYTES = 4
SESSION_ID_BYTES = 8
#: magic, version, kind, session_id, key_epoch, counter: authenticated as AEAD associated data.
DATA_HEADER_BYTES = HEADER_BYTES + SESSION_ID_BYTES + 1 + 8
#: What DATA adds around a payload; the layer above has MAX_DATAGRAM_BYTES - this for itself.
DATA_OVERHEAD_BYTES = DATA_HEADER_BYTES + TAG_LEN_BYTES
MAX_PAYLOAD_BYTES = MAX_DATAGRAM_BYTES - DATA_OVERHEAD_BYTES
#: A HELLO is padded to at least this, so a 116-byte WELCOME stays well inside the 3x budget.
HELLO_MIN_BYTES = 128
HELLO_PADDING_BYTES = HELLO_MIN_BYTES - HEADER_BYTES - 1 - DH_LEN_BYTES
COOKIE_BYTES = 24
COOKIE_MAC_BYTES = COOKIE_BYTES - 4
EPHEMERAL_PREFIX_BYTES = 8
COOKIE_DATAGRAM_BYTES = HEADER_BYTES + EPHEMERAL_PREFIX_BYTES + COOKIE_BYTES
#: e (32) + encrypted s (32 + 16) + encrypted session_id (8 + 16).
WELCOME_BYTES = (
    HEADER_BYTES + SESSION_ID_BYTES + DH_LEN_BYTES * 2 + TAG_LEN_BYTES * 2 + SESSION_ID_BYTES
)
RESET_BYTES = HEADER_BYTES + SESSION_ID_BYTES
#: Before an address is proven (authenticated DATA from it) we send it at most 3x what it sent us.
ANTI_AMPLIFICATION_FACTOR = 3
#: Ring of 64-bit words for the replay bitmap (RFC 6479); one word is kept as slack for the sliding.
REPLAY_WINDOW_WORDS = 32
REPLAY_WINDOW_SIZE = (REPLAY_WINDOW_WORDS - 1) * 64
#: Nonce 2^64-1 is reserved by Noise for Rekey(), so the last usable counter is one below it.
MAX_COUNTER = 2**64 - 2
#: How many epochs ahead a receiver will derive keys, in case every datagram of an epoch was lost.
MAX_EPOCH_SKIP = 3
#: Caps the outgoing queue if a caller forgets to drain it: memory stays bounded either way.
MAX_QUEUED_DATAGRAMS = 4096

HELLO_RETRY_INITIAL_S = 0.25
HELLO_RETRY_MAX_S = 2.0
HANDSHAKE_TIMEOUT_S = 10.0
REKEY_AFTER_MESSAGES = 2**20
REKEY_AFTER_S = 600.0
REKEY_GRACE_S = 30.0
COOKIE_BUCKET_S = 30.0

_DATA_STRUCT = struct.Struct(">8sBQ")


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """Tunables of both channel ends. Defaults suit a LAN; tests shrink the thresholds."""

    hello_retry_initial_s: float = HELLO_RETRY_INITIAL_S
    """Client: first HELLO retransmit delay. Doubles each time: a lost datagram costs little."""
    hello_retry_max_s: float = HELLO_RETRY_MAX_S
    """Client: cap on the retransmit delay, so a briefly unreachable server is found again fast."""
    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S
    """Server: a half-open session (WELCOME sent, no DATA yet) is forgotten after this."""
    rekey_after_messages: int = REKEY_AFTER_MESSAGES
    """A sender rekeys after this many DATA datagrams in one epoch: limits what one key guards."""
    rekey_after_s: float = REKEY_AFTER_S
    """A sender rekeys when its key is this old, giving forward secrecy within a long session."""
    rekey_grace_s: float = REKEY_GRACE_S
    """A receiver keeps the previous epoch's key this long for reordered stragglers."""
    hello_rate_per_s: float = 50.0
    """Server: per-host HELLO token bucket refill rate; stops one host hogging handshakes."""
    hello_burst: float = 200.0
    """Server: per-host HELLO bucket size; generous so tests with many local clients pass."""
    reset_rate_per_s: float = 5.0
    """Server: per-host RESET refill rate; RESETs are unauthenticated, so keep them rare."""
    reset_burst: float = 10.0
    """Server: per-host RESET bucket size."""
    cookie_half_open_threshold: int = 256
    """Server: at this many half-open sessions, a HELLO without a valid cookie gets a COOKIE."""
    cookie_hello_rate_per_s: float = 1000.0
    """Server: global HELLO rate above which cookies are demanded (spoofed floods make no state)."""
    cookie_hello_burst: float = 2000.0
    """Server: bucket size for the global HELLO rate."""
    cookie_bucket_s: float = COOKIE_BUCKET_S
    """Server: cookie time bucket; a cookie is valid in its bucket and the next one (30-60 s)."""
    max_half_open: int = 1024
    """Server: hard cap on half-open sessions; the oldest is evicted to make room."""
    max_sessions: int = 8192
    """Server: cap on all sessions; when full of confirmed sessions, new HELLOs are dropped."""
    max_tracked_addresses: int = 4096
    """Server: cap on per-host state (rate buckets, amplification budget); oldest evicted."""

    def __post_init__(self) -> None:
        if self.hello_retry_initial_s <= 0 or self.hello_retry_max_s < self.hello_retry_initial_s:
            raise LocalProtocolError("HELLO retry delays must be positive and max >= initial")
        if self.rekey_after_messages < 1 or self.rekey_after_s <= 0 or self.cookie_bucket_s <= 0:
            raise LocalProtocolError("rekey thresholds and the cookie bucket must be positive")
        if min(self.max_half_open, self.max_sessions, self.max_tracked_addresses) < 1:
            raise LocalProtocolError("table caps must be at least 1")


@dataclass(slots=True)
class ChannelStats:
    """Why datagrams were dropped, and what was sent: drops are silent on the wire, not here."""

    malformed: int = 0
    unknown_kind: int = 0
    bad_version: int = 0
    unexpected: int = 0
    auth_failed: int = 0
    replayed: int = 0
    too_old: int = 0
    bad_epoch: int = 0
    unknown_session: int = 0
    handshakes: int = 0
    handshakes_expired: int = 0
    cookies_sent: int = 0
    cookies_received: int = 0
    resets_sent: int = 0
    resets_received: int = 0
    resets_rate_limited: int = 0
    amplification_limited: int = 0
    handshake_rate_limited: int = 0
    session_table_full: int = 0


@dataclass(frozen=True, slots=True)
class ChannelData:
    """An authenticated, decrypted, non-replayed payload (server side)."""

    session_id: bytes
    addr: Address
    """Where it came from now: may differ from before (migration, proved by the AEAD)."""
    payload: bytes


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """The server proved it holds `server_key`; `first_contact` means nothing was pinned yet."""

    server_key: bytes
    fingerprint: str
    first_contact: bool


@dataclass(frozen=True, slots=True)
class ServerKeyChanged:
    """The server's key is not the pinned one: the handshake is aborted and nothing can be sent."""

    expected_fingerprint: str
    actual_fingerprint: str


@dataclass(frozen=True, slots=True)
class ResetReceived:
    """The server says it does not know our session (it restarted?): call start() again."""


ChannelEvent = HandshakeCompleted | ServerKeyChanged | ResetReceived


def fingerprint(public_key: bytes) -> str:
    """ "SHA256:" + unpadded base64 of SHA-256(key), the way OpenSSH prints host keys."""
    digest = hashlib.sha256(public_key).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


class _Drop(DecodeError):
    """Internal: drop the datagram and count it under `reason` (a ChannelStats field name)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _count(stats: ChannelStats, reason: str) -> None:
    setattr(stats, reason, getattr(stats, reason) + 1)


def _header(kind: Kind) -> bytes:
    return MAGIC + bytes((VERSION, kind))


def _parse_header(data: bytes) -> Kind:
    if len(data) < HEADER_BYTES or len(data) > MAX_DATAGRAM_BYTES or data[:2] != MAGIC:
        raise _Drop("malformed")
    if data[2] != VERSION:
        raise _Drop("bad_version")
    try:
        return Kind(data[3])
    except ValueError:
        raise _Drop("unknown_kind") from None


class ReplayWindow:
    """Sliding replay bitmap as in RFC 6479: a ring of 64-bit words, cleared as it slides.

    `check` runs before decryption and `mark` only after it succeeds, so a forged datagram cannot
    poison the window (as in WireGuard).
    """

    __slots__ = ("_ring", "_top")

    def __init__(self) -> None:
        self._ring = [0] * REPLAY_WINDOW_WORDS
        self._top = -1

    def check(self, counter: int) -> None:
        """Raise _Drop('replayed' / 'too_old') unless `counter` may still be accepted."""
        if counter > self._top:
            return
        if self._top - counter >= REPLAY_WINDOW_SIZE:
            raise _Drop("too_old")
        if self._ring[(counter >> 6) % REPLAY_WINDOW_WORDS] >> (counter & 63) & 1:
            raise _Drop("replayed")

    def mark(self, counter: int) -> bool:
        """Record `counter`; True if it is the new highest (the sender's current address)."""
        advanced = counter > self._top
        if advanced:
            top_word, new_word = self._top >> 6, counter >> 6
            for step in range(1, min(new_word - top_word, REPLAY_WINDOW_WORDS) + 1):
                self._ring[(top_word + step) % REPLAY_WINDOW_WORDS] = 0
            self._top = counter
        self._ring[(counter >> 6) % REPLAY_WINDOW_WORDS] |= 1 << (counter & 63)
        return advanced


class _Sender:
    """One direction's sending half: key, epoch and a counter that never resets across rekeys."""

    __slots__ = ("cipher", "counter", "epoch", "epoch_messages", "epoch_started_at")

    def __init__(self, cipher: CipherState, now: float) -> None:
        self.cipher, self.epoch, self.counter = cipher, 0, 0
        self.epoch_messages, self.epoch_started_at = 0, now

    def seal(self, session_id: bytes, payload: bytes, now: float, config: ChannelConfig) -> bytes:
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise LocalProtocolError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
        if self.counter > MAX_COUNTER:
            raise LocalProtocolError("counter exhausted: start a new session")
        if (
            self.epoch_messages >= config.rekey_after_messages
            or now - self.epoch_started_at >= config.rekey_after_s
        ):
            self.cipher.rekey()
            self.epoch = (self.epoch + 1) & 0xFF
            self.epoch_messages, self.epoch_started_at = 0, now
        header = _header(Kind.DATA) + _DATA_STRUCT.pack(session_id, self.epoch, self.counter)
        self.cipher.set_nonce(self.counter)
        ciphertext = self.cipher.encrypt_with_ad(header, payload)
        self.counter += 1
        self.epoch_messages += 1
        return header + ciphertext


class _Receiver:
    """One direction's receiving half: current key, previous key (grace), one replay window."""

    __slots__ = ("cipher", "epoch", "previous", "previous_epoch", "previous_until", "window")

    def __init__(self, cipher: CipherState) -> None:
        self.cipher, self.epoch = cipher, 0
        self.previous: CipherState | None = None
        self.previous_epoch, self.previous_until = 0, 0.0
        self.window = ReplayWindow()

    def open(self, data: bytes, now: float, config: ChannelConfig) -> tuple[bytes, bool]:
        """Decrypt a DATA datagram of the right session: (payload, counter is the new highest)."""
        _, epoch, counter = _DATA_STRUCT.unpack_from(data, HEADER_BYTES)
        self.window.check(counter)
        candidate: CipherState | None = None
        if epoch == self.epoch:
            cipher = self.cipher
        elif (
            self.previous is not None and epoch == self.previous_epoch and now < self.previous_until
        ):
            cipher = self.previous
        else:
            skip = (epoch - self.epoch) & 0xFF
            if not 1 <= skip <= MAX_EPOCH_SKIP:
                raise _Drop("bad_epoch")
            candidate = self.cipher.copy()
            for _ in range(skip):
                candidate.rekey()
            cipher = candidate
        cipher.set_nonce(counter)
        try:
            payload = cipher.decrypt_with_ad(data[:DATA_HEADER_BYTES], data[DATA_HEADER_BYTES:])
        except DecodeError:
            raise _Drop("auth_failed") from None
        if candidate is not None:  # only an authenticated datagram may move us to a new epoch
            self.previous, self.previous_epoch = self.cipher, self.epoch
            self.previous_until = now + config.rekey_grace_s
            self.cipher, self.epoch = candidate, epoch
        return payload, self.window.mark(counter)


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
class _Session:
    session_id: bytes
    addr: Address
    hello_key: tuple[Address, bytes]
    welcome: bytes
    sender: _Sender
    receiver: _Receiver
    deadline: float
    confirmed: bool = False


@dataclass(slots=True)
class _ClientSession:
    session_id: bytes
    server_key: bytes
    sender: _Sender
    receiver: _Receiver


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
        burst = self.config.cookie_hello_burst
        self._load_bucket = _TokenBucket(self.config.cookie_hello_rate_per_s, burst, burst)
        self._outbox: list[tuple[bytes, Address]] = []
        self.stats = ChannelStats()

    @property
    def public_key(self) -> bytes:
        return self._static.public

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> ChannelData | None:
        """Process one datagram. Never raises on hostile bytes: drops are counted in `stats`."""
        try:
            kind = _parse_header(data)
            if kind is Kind.HELLO:
                self._on_hello(data, addr, now)
                return None
            if kind is Kind.DATA:
                return self._on_data(data, addr, now)
            raise _Drop("unexpected")
        except _Drop as drop:
            _count(self.stats, drop.reason)
        except DecodeError:  # e.g. a low-order ephemeral key in a HELLO
            self.stats.malformed += 1
        return None

    def seal(self, session_id: bytes, payload: bytes, now: float) -> tuple[bytes, Address]:
        """A DATA datagram for a confirmed session, and the address to send it to."""
        session = self._sessions.get(session_id)
        if session is None or not session.confirmed:
            raise LocalProtocolError("unknown session")
        return session.sender.seal(session_id, payload, now, self.config), session.addr

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._outbox = self._outbox, []
        return out

    def close(self, session_id: bytes) -> None:
        session = self._sessions.pop(session_id, None)
        if session is not None:
            self._half_open.pop(session_id, None)
            self._hello_index.pop(session.hello_key, None)

    def is_open(self, session_id: bytes) -> bool:
        """True for a confirmed session, i.e. exactly when seal() would accept it."""
        session = self._sessions.get(session_id)
        return session is not None and session.confirmed

    def next_timer(self) -> float | None:
        for session_id in self._half_open:
            return self._sessions[session_id].deadline
        return None

    def handle_timer(self, now: float) -> None:
        """Forget half-open sessions past their deadline (a spoofed HELLO never sends DATA)."""
        while self._half_open:
            session_id = next(iter(self._half_open))
            if self._sessions[session_id].deadline > now:
                break
            self.close(session_id)
            self.stats.handshakes_expired += 1

    # -- internals -------------------------------------------------------------------------------

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
        if (
            state.validated
            or state.sent_bytes + size <= ANTI_AMPLIFICATION_FACTOR * state.received_bytes
        ):
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

    def _cookie_valid(
        self, cookie: bytes, addr: Address, client_ephemeral: bytes, now: float
    ) -> bool:
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
        rate_exceeded = not self._load_bucket.take(now)
        if not (cookie and self._cookie_valid(cookie, addr, client_ephemeral, now)) and (
            rate_exceeded or len(self._half_open) >= self.config.cookie_half_open_threshold
        ):
            reply = _header(Kind.COOKIE) + client_ephemeral[:EPHEMERAL_PREFIX_BYTES]
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
        welcome = _header(Kind.WELCOME) + session_id + reply_message
        hello_key = (addr, client_ephemeral)
        self._sessions[session_id] = _Session(
            session_id=session_id,
            addr=addr,
            hello_key=hello_key,
            welcome=welcome,
            sender=_Sender(split[1], now),
            receiver=_Receiver(split[0]),
            deadline=now + self.config.handshake_timeout_s,
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
                if self._send(_header(Kind.RESET) + session_id, addr, state):
                    self.stats.resets_sent += 1
            else:
                self.stats.resets_rate_limited += 1
            raise _Drop("unknown_session")
        payload, newest = session.receiver.open(data, now, self.config)
        if not session.confirmed:
            session.confirmed = True
            self._half_open.pop(session_id, None)
        self._address(addr).validated = True
        if newest:
            session.addr = addr
        return ChannelData(session_id, addr, payload)


class ClientChannel:
    """One client's channel to one server: handshake, pinning, DATA, retransmits."""

    def __init__(
        self,
        expected_server_key: bytes | None,
        rng: Rng = os.urandom,
        config: ChannelConfig | None = None,
    ) -> None:
        if expected_server_key is not None and len(expected_server_key) != DH_LEN_BYTES:
            raise LocalProtocolError("a server key is 32 bytes")
        self._expected = expected_server_key
        self._rng = rng
        self.config = config if config is not None else ChannelConfig()
        self._handshake: HandshakeState | None = None
        self._hello_message = b""
        self._cookie = b""
        self._retry_at: float | None = None
        self._retry_interval_s = self.config.hello_retry_initial_s
        self._session: _ClientSession | None = None
        self._outbox: list[bytes] = []
        self._events: list[ChannelEvent] = []
        self.stats = ChannelStats()

    @property
    def established(self) -> bool:
        return self._session is not None

    @property
    def session_id(self) -> bytes | None:
        return self._session.session_id if self._session is not None else None

    @property
    def server_key(self) -> bytes | None:
        return self._session.server_key if self._session is not None else None

    def start(self, now: float) -> None:
        """Begin (or restart) a handshake with a fresh ephemeral key.

        An established session keeps working until the new WELCOME arrives, so a spurious RESET
        costs nothing but a handshake.
        """
        handshake = HandshakeState(PROTOCOL_NAME, initiator=True, prologue=PROLOGUE, rng=self._rng)
        self._hello_message, _ = handshake.write_message(bytes(HELLO_PADDING_BYTES))
        self._handshake = handshake
        self._cookie = b""
        self._retry_interval_s = self.config.hello_retry_initial_s
        self._retry_at = now + self._retry_interval_s
        self._queue(self._hello())

    def receive_datagram(self, data: bytes, now: float) -> bytes | None:
        """The DATA payload, or None (handshake progress or a counted drop). Never raises."""
        try:
            kind = _parse_header(data)
            if kind is Kind.DATA:
                return self._on_data(data, now)
            if kind is Kind.WELCOME:
                self._on_welcome(data, now)
            elif kind is Kind.COOKIE:
                self._on_cookie(data, now)
            elif kind is Kind.RESET:
                self._on_reset(data)
            else:
                raise _Drop("unexpected")
        except _Drop as drop:
            _count(self.stats, drop.reason)
        except DecodeError:
            self.stats.malformed += 1
        return None

    def seal(self, payload: bytes, now: float) -> bytes:
        if self._session is None:
            raise LocalProtocolError("the channel is not established")
        session = self._session
        return session.sender.seal(session.session_id, payload, now, self.config)

    def datagrams_to_send(self) -> list[bytes]:
        out, self._outbox = self._outbox, []
        return out

    def next_timer(self) -> float | None:
        return self._retry_at

    def handle_timer(self, now: float) -> None:
        """Retransmit the HELLO (same ephemeral) with exponential backoff."""
        if self._retry_at is None or now < self._retry_at:
            return
        self._retry_interval_s = min(self._retry_interval_s * 2, self.config.hello_retry_max_s)
        self._retry_at = now + self._retry_interval_s
        self._queue(self._hello())

    def events(self) -> Iterator[ChannelEvent]:
        """Drain the events that happened since the last call."""
        drained, self._events = self._events, []
        return iter(drained)

    # -- internals -------------------------------------------------------------------------------

    def _queue(self, datagram: bytes) -> None:
        self._outbox.append(datagram)
        del self._outbox[:-MAX_QUEUED_DATAGRAMS]

    def _hello(self) -> bytes:
        return (
            _header(Kind.HELLO) + bytes((len(self._cookie),)) + self._cookie + self._hello_message
        )

    def _on_cookie(self, data: bytes, now: float) -> None:
        if len(data) != COOKIE_DATAGRAM_BYTES:
            raise _Drop("malformed")
        prefix = data[HEADER_BYTES : HEADER_BYTES + EPHEMERAL_PREFIX_BYTES]
        if self._handshake is None or prefix != self._hello_message[:EPHEMERAL_PREFIX_BYTES]:
            raise _Drop("unexpected")
        self.stats.cookies_received += 1
        self._cookie = data[HEADER_BYTES + EPHEMERAL_PREFIX_BYTES :]
        self._retry_at = now + self._retry_interval_s
        self._queue(self._hello())

    def _on_welcome(self, data: bytes, now: float) -> None:
        if len(data) != WELCOME_BYTES:
            raise _Drop("malformed")
        if self._handshake is None:
            raise _Drop("unexpected")
        session_id = data[HEADER_BYTES : HEADER_BYTES + SESSION_ID_BYTES]
        # Read into a copy: a forged WELCOME must not spoil the handshake for the real one.
        trial = self._handshake.copy()
        try:
            payload, split = trial.read_message(data[HEADER_BYTES + SESSION_ID_BYTES :])
        except DecodeError:
            raise _Drop("auth_failed") from None
        if split is None or trial.rs is None or not constant_time.bytes_eq(payload, session_id):
            raise _Drop("auth_failed")
        server_key = trial.rs
        self._handshake, self._retry_at = None, None
        if self._expected is not None and server_key != self._expected:
            self._session = None  # aborted: nothing may be sent under an unverified key
            self._events.append(
                ServerKeyChanged(fingerprint(self._expected), fingerprint(server_key))
            )
            return
        first_contact = self._expected is None
        self._expected = server_key  # later re-handshakes on this object must reach the same server
        self._session = _ClientSession(
            session_id, server_key, _Sender(split[0], now), _Receiver(split[1])
        )
        self.stats.handshakes += 1
        self._events.append(HandshakeCompleted(server_key, fingerprint(server_key), first_contact))

    def _on_data(self, data: bytes, now: float) -> bytes:
        if len(data) < DATA_OVERHEAD_BYTES:
            raise _Drop("malformed")
        session = self._session
        if (
            session is None
            or data[HEADER_BYTES : HEADER_BYTES + SESSION_ID_BYTES] != session.session_id
        ):
            raise _Drop("unknown_session")
        payload, _ = session.receiver.open(data, now, self.config)
        return payload

    def _on_reset(self, data: bytes) -> None:
        if len(data) != RESET_BYTES:
            raise _Drop("malformed")
        if self._session is None or data[HEADER_BYTES:] != self._session.session_id:
            raise _Drop("unknown_session")
        self.stats.resets_received += 1
        # One hint is enough: if a handshake is already under way, it is the answer.
        if self._handshake is None:
            self._events.append(ResetReceived())
