"""Shared parts of the labchat secure channel: the datagram layout and its limits, the channel's
config, counters and events, the replay window and the per-direction key state. The two ends are in
channel_server.py and channel_client.py; channel.py is the public face that re-exports all three.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum

from labchat.protocol.errors import DecodeError, LocalProtocolError
from labchat.protocol.noise import (
    DH_LEN_BYTES,
    TAG_LEN_BYTES,
    CipherState,
)

Address = tuple[str, int]

PROTOCOL_NAME = "Noise_NX_25519_ChaChaPoly_SHA256"
#: Hashed into the handshake, so a peer speaking another protocol (or version) cannot complete it.
PROLOGUE = b"labchat/1"
MAGIC = b"LC"
VERSION = 1


class DatagramKind(IntEnum):
    """The datagram kinds (byte 3 of every datagram)."""

    HELLO = 1
    COOKIE = 2
    WELCOME = 3
    DATA = 4
    RESET = 5
    PATH_CHALLENGE = 6
    PATH_RESPONSE = 7
    DISCOVER = 8
    DISCOVERED = 9


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
WELCOME_BYTES = HEADER_BYTES + SESSION_ID_BYTES + DH_LEN_BYTES * 2 + TAG_LEN_BYTES * 2 + SESSION_ID_BYTES
RESET_BYTES = HEADER_BYTES + SESSION_ID_BYTES
#: The random value a PATH_CHALLENGE carries and its PATH_RESPONSE echoes (docs/protocol.md 4.6).
PATH_TOKEN_BYTES = 8
#: PATH_CHALLENGE and PATH_RESPONSE are sealed like DATA around exactly one token.
PATH_DATAGRAM_BYTES = DATA_OVERHEAD_BYTES + PATH_TOKEN_BYTES
#: Before an address is proven (authenticated DATA from it) we send it at most 3x what it sent us.
ANTI_AMPLIFICATION_FACTOR = 3
#: Ring of 64-bit words for the replay bitmap (RFC 6479); one word is kept as slack for the sliding.
REPLAY_WINDOW_WORDS = 32
REPLAY_WINDOW_SIZE = (REPLAY_WINDOW_WORDS - 1) * 64
_RING_BYTES = REPLAY_WINDOW_WORDS * 8
_ZERO_WORD = bytes(8)
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
#: A session that has not logged in this long after its WELCOME is forgotten (PINGs do not help).
PRELOGIN_TIMEOUT_S = 10.0
#: Confirmed sessions that have not logged in, per host: one host cannot fill the session table.
MAX_PRELOGIN_PER_HOST = 16
#: Addresses of one session being validated at once; the oldest is forgotten beyond this.
MAX_PENDING_PATHS = 4
#: A pending path is challenged again at most this often (a lost challenge is retried on later DATA).
PATH_CHALLENGE_INTERVAL_S = 0.2

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
    prelogin_timeout_s: float = PRELOGIN_TIMEOUT_S
    """Server: a session not marked authenticated this long after its WELCOME is forgotten, so
    sessions that never log in cannot be held open with PINGs."""
    max_prelogin_per_host: int = MAX_PRELOGIN_PER_HOST
    """Server: confirmed sessions not yet authenticated, per host of their HELLO; beyond it, HELLOs
    get no WELCOME and confirming DATA is dropped. Half-open sessions do not count (spoofable)."""
    max_pending_paths: int = MAX_PENDING_PATHS
    """Server: addresses of one session under path validation at once, oldest forgotten."""
    path_challenge_interval_s: float = PATH_CHALLENGE_INTERVAL_S
    """Server: the least time between two PATH_CHALLENGEs to the same pending address."""
    cipher_keep_sessions: int = 64
    """Server: this many sessions keep their AEAD contexts however idle they are, so a small server
    never rebuilds one and never wakes up to free one. A context is about 2.3 KB of OpenSSL memory
    (one per direction): for an idle session, most of what it costs."""
    cipher_idle_s: float = 0.5
    """Server: beyond `cipher_keep_sessions`, a session's contexts are freed once it has been this
    long without a datagram (in batches: a little earlier for some), and rebuilt (about 1 µs each)
    on its next one. A busy session never pays; an idle one pays once per keepalive."""
    max_cipher_sessions: int = 256
    """Server: at most this many sessions hold AEAD contexts at once (least recently used freed
    first), so even a server whose sessions are all busy holds a bounded amount of OpenSSL memory."""

    def __post_init__(self) -> None:
        if self.hello_retry_initial_s <= 0 or self.hello_retry_max_s < self.hello_retry_initial_s:
            raise LocalProtocolError("HELLO retry delays must be positive and max >= initial")
        if self.rekey_after_messages < 1 or self.rekey_after_s <= 0 or self.cookie_bucket_s <= 0:
            raise LocalProtocolError("rekey thresholds and the cookie bucket must be positive")
        if min(self.max_half_open, self.max_sessions, self.max_tracked_addresses,
               self.max_cipher_sessions, self.max_prelogin_per_host, self.max_pending_paths) < 1:
            raise LocalProtocolError("table caps must be at least 1")
        if self.cipher_idle_s <= 0 or self.cipher_keep_sessions < 0:
            raise LocalProtocolError("cipher_idle_s must be positive, cipher_keep_sessions not negative")
        if self.prelogin_timeout_s <= 0 or self.path_challenge_interval_s < 0:
            raise LocalProtocolError("prelogin_timeout_s must be positive, path_challenge_interval_s >= 0")


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
    path_challenges_sent: int = 0
    path_challenges_received: int = 0
    path_responses_sent: int = 0
    path_validated: int = 0
    discover_answered: int = 0
    discover_rate_limited: int = 0
    """PATH_RESPONSEs that proved their address (whether or not the session moved there)."""
    path_response_mismatch: int = 0
    """PATH_RESPONSEs with an unknown token or from another address than the one challenged."""
    migrations: int = 0
    prelogin_expired: int = 0
    prelogin_limited: int = 0


@dataclass(frozen=True, slots=True)
class ChannelData:
    """An authenticated, decrypted, non-replayed payload (server side)."""

    session_id: bytes
    addr: Address
    """The session's validated address, where its replies go: the HELLO's address at first, and a
    new one only after path validation (docs/protocol.md 4.6). The datagram itself may have come
    from elsewhere (a copy, or a client that is moving): its payload is authentic either way."""
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


def _header(kind: DatagramKind) -> bytes:
    return MAGIC + bytes((VERSION, kind))


_DATA_HEADER = _header(DatagramKind.DATA)  # every sealed datagram but the path ones starts with it
_PATH_CHALLENGE_HEADER = _header(DatagramKind.PATH_CHALLENGE)
_PATH_RESPONSE_HEADER = _header(DatagramKind.PATH_RESPONSE)


def _parse_header(data: bytes) -> DatagramKind:
    if len(data) < HEADER_BYTES or len(data) > MAX_DATAGRAM_BYTES or data[:2] != MAGIC:
        raise _Drop("malformed")
    if data[2] != VERSION:
        raise _Drop("bad_version")
    try:
        return DatagramKind(data[3])
    except ValueError:
        raise _Drop("unknown_kind") from None


class ReplayWindow:
    """Sliding replay bitmap as in RFC 6479: a ring of 64-bit words, cleared as it slides.

    `check` runs before decryption and `mark` only after it succeeds, so a forged datagram cannot
    poison the window (as in WireGuard).

    The ring is one bytearray (the 32 words, byte by byte) rather than a list of Python ints: every
    session on a server has one, and a list kept a separate int object for each non-zero word (up to
    32 x 36 bytes on a busy session, on top of the list), allocated anew on every datagram.
    """

    __slots__ = ("_ring", "_top")

    def __init__(self) -> None:
        self._ring = bytearray(_RING_BYTES)
        self._top = -1

    def check(self, counter: int) -> None:
        """Raise _Drop('replayed' / 'too_old') unless `counter` may still be accepted."""
        if counter > self._top:
            return
        if self._top - counter >= REPLAY_WINDOW_SIZE:
            raise _Drop("too_old")
        if self._ring[(counter >> 3) % _RING_BYTES] >> (counter & 7) & 1:
            raise _Drop("replayed")

    def mark(self, counter: int) -> bool:
        """Record `counter`; True if it is the new highest (the sender's current address)."""
        advanced = counter > self._top
        if advanced:
            ring = self._ring
            top_word, new_word = self._top >> 6, counter >> 6
            for step in range(1, min(new_word - top_word, REPLAY_WINDOW_WORDS) + 1):
                start = (top_word + step) % REPLAY_WINDOW_WORDS * 8
                ring[start : start + 8] = _ZERO_WORD
            self._top = counter
        self._ring[(counter >> 3) % _RING_BYTES] |= 1 << (counter & 7)
        return advanced


class _Sender:
    """One direction's sending half: key, epoch and a counter that never resets across rekeys."""

    __slots__ = ("cipher", "counter", "epoch", "epoch_messages", "epoch_started_at")

    def __init__(self, cipher: CipherState, now: float) -> None:
        self.cipher, self.epoch, self.counter = cipher, 0, 0
        self.epoch_messages, self.epoch_started_at = 0, now

    def seal(
        self,
        session_id: bytes,
        payload: bytes,
        now: float,
        config: ChannelConfig,
        prefix: bytes = _DATA_HEADER,
    ) -> bytes:
        """One sealed datagram: DATA by default; `prefix` = the header of another sealed kind."""
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
        header = prefix + _DATA_STRUCT.pack(session_id, self.epoch, self.counter)
        self.cipher.set_nonce(self.counter)
        ciphertext = self.cipher.encrypt_with_ad(header, payload)
        self.counter += 1
        self.epoch_messages += 1
        return header + ciphertext

    def release_contexts(self) -> None:
        """Free the AEAD context while the session is idle (see CipherState.release_context)."""
        self.cipher.release_context()


class _Receiver:
    """One direction's receiving half: current key, previous key (grace), one replay window."""

    __slots__ = ("cipher", "epoch", "previous", "previous_epoch", "previous_until", "window")

    def __init__(self, cipher: CipherState) -> None:
        self.cipher, self.epoch = cipher, 0
        self.previous: CipherState | None = None
        self.previous_epoch, self.previous_until = 0, 0.0
        self.window = ReplayWindow()

    def open(self, data: bytes, now: float, config: ChannelConfig) -> tuple[bytes, bool]:
        """Decrypt a sealed datagram (DATA, PATH_*) of the right session: (payload, counter is the
        new highest). The kind byte is in the associated data, so kinds cannot be swapped."""
        _, epoch, counter = _DATA_STRUCT.unpack_from(data, HEADER_BYTES)
        self.window.check(counter)
        candidate: CipherState | None = None
        if epoch == self.epoch:
            cipher = self.cipher
        elif self.previous is not None and epoch == self.previous_epoch and now < self.previous_until:
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

    def release_contexts(self) -> None:
        """Free the AEAD contexts while the session is idle (see CipherState.release_context)."""
        self.cipher.release_context()
        if self.previous is not None:
            self.previous.release_context()
