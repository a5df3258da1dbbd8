"""The client end of the labchat channel: the handshake with one server, key pinning, DATA,
HELLO retransmits, RESET handling and answers to the server's path challenges.

The datagram layout and the shared pieces (config, stats, events, replay window) are in channel.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.hazmat.primitives import constant_time

from labchat.protocol.channel_common import (
    _PATH_RESPONSE_HEADER,
    COOKIE_DATAGRAM_BYTES,
    DATA_OVERHEAD_BYTES,
    EPHEMERAL_PREFIX_BYTES,
    HEADER_BYTES,
    HELLO_PADDING_BYTES,
    MAX_QUEUED_DATAGRAMS,
    PATH_DATAGRAM_BYTES,
    PROLOGUE,
    PROTOCOL_NAME,
    RESET_BYTES,
    SESSION_ID_BYTES,
    WELCOME_BYTES,
    ChannelConfig,
    ChannelEvent,
    ChannelStats,
    DatagramKind,
    HandshakeCompleted,
    ResetReceived,
    ServerKeyChanged,
    _count,
    _Drop,
    _header,
    _parse_header,
    _Receiver,
    _Sender,
    fingerprint,
)
from labchat.protocol.errors import DecodeError, LocalProtocolError
from labchat.protocol.noise import (
    DH_LEN_BYTES,
    HandshakeState,
    Rng,
)


@dataclass(slots=True)
class _ClientSession:
    session_id: bytes
    server_key: bytes
    sender: _Sender
    receiver: _Receiver


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
            if kind is DatagramKind.DATA:
                return self._on_data(data, now)
            if kind is DatagramKind.WELCOME:
                self._on_welcome(data, now)
            elif kind is DatagramKind.COOKIE:
                self._on_cookie(data, now)
            elif kind is DatagramKind.RESET:
                self._on_reset(data)
            elif kind is DatagramKind.PATH_CHALLENGE:
                self._on_path_challenge(data, now)
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
        return _header(DatagramKind.HELLO) + bytes((len(self._cookie),)) + self._cookie + self._hello_message

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
            self._events.append(ServerKeyChanged(fingerprint(self._expected), fingerprint(server_key)))
            return
        first_contact = self._expected is None
        self._expected = server_key  # later re-handshakes on this object must reach the same server
        self._session = _ClientSession(session_id, server_key, _Sender(split[0], now), _Receiver(split[1]))
        self.stats.handshakes += 1
        self._events.append(HandshakeCompleted(server_key, fingerprint(server_key), first_contact))

    def _on_data(self, data: bytes, now: float) -> bytes:
        if len(data) < DATA_OVERHEAD_BYTES:
            raise _Drop("malformed")
        session = self._session
        if session is None or data[HEADER_BYTES : HEADER_BYTES + SESSION_ID_BYTES] != session.session_id:
            raise _Drop("unknown_session")
        payload, _ = session.receiver.open(data, now, self.config)
        return payload

    def _on_path_challenge(self, data: bytes, now: float) -> None:
        """Echo the token at once, sealed, from our socket: that is what proves to the server that
        we receive at the address it challenged (docs/protocol.md 4.6). No state is kept: a copy of
        our datagram sent from elsewhere gets a challenge there, and we never see it."""
        if len(data) != PATH_DATAGRAM_BYTES:
            raise _Drop("malformed")
        session = self._session
        if session is None or data[HEADER_BYTES : HEADER_BYTES + SESSION_ID_BYTES] != session.session_id:
            raise _Drop("unknown_session")
        token, _ = session.receiver.open(data, now, self.config)
        self.stats.path_challenges_received += 1
        self._queue(session.sender.seal(session.session_id, token, now, self.config, _PATH_RESPONSE_HEADER))
        self.stats.path_responses_sent += 1

    def _on_reset(self, data: bytes) -> None:
        if len(data) != RESET_BYTES:
            raise _Drop("malformed")
        if self._session is None or data[HEADER_BYTES:] != self._session.session_id:
            raise _Drop("unknown_session")
        self.stats.resets_received += 1
        # One hint is enough: if a handshake is already under way, it is the answer.
        if self._handshake is None:
            self._events.append(ResetReceived())
