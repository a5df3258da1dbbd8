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
    PATH_CHALLENGE s->c, PATH_RESPONSE c->s: sealed like DATA around an 8-byte token (path validation)

docs/security.md explains the threat model behind each rule.

The code is in three modules: channel_common.py (layout, config, counters, events, replay window,
per-direction keys), channel_server.py and channel_client.py (the two ends). This module re-exports
their public names, so `labchat.protocol.channel` is the one place to import from.
"""

from labchat.protocol.channel_client import ClientChannel
from labchat.protocol.channel_common import (
    ANTI_AMPLIFICATION_FACTOR,
    COOKIE_BUCKET_S,
    COOKIE_BYTES,
    COOKIE_DATAGRAM_BYTES,
    COOKIE_MAC_BYTES,
    DATA_HEADER_BYTES,
    DATA_OVERHEAD_BYTES,
    EPHEMERAL_PREFIX_BYTES,
    HANDSHAKE_TIMEOUT_S,
    HEADER_BYTES,
    HELLO_MIN_BYTES,
    HELLO_PADDING_BYTES,
    HELLO_RETRY_INITIAL_S,
    HELLO_RETRY_MAX_S,
    MAGIC,
    MAX_COUNTER,
    MAX_DATAGRAM_BYTES,
    MAX_EPOCH_SKIP,
    MAX_PAYLOAD_BYTES,
    MAX_PENDING_PATHS,
    MAX_PRELOGIN_PER_HOST,
    MAX_QUEUED_DATAGRAMS,
    PATH_CHALLENGE_INTERVAL_S,
    PATH_DATAGRAM_BYTES,
    PATH_TOKEN_BYTES,
    PRELOGIN_TIMEOUT_S,
    PROLOGUE,
    PROTOCOL_NAME,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_S,
    REKEY_GRACE_S,
    REPLAY_WINDOW_SIZE,
    REPLAY_WINDOW_WORDS,
    RESET_BYTES,
    SESSION_ID_BYTES,
    VERSION,
    WELCOME_BYTES,
    Address,
    ChannelConfig,
    ChannelData,
    ChannelEvent,
    ChannelStats,
    DatagramKind,
    HandshakeCompleted,
    ReplayWindow,
    ResetReceived,
    ServerKeyChanged,
    fingerprint,
)
from labchat.protocol.channel_server import ServerChannel

__all__ = [
    "ANTI_AMPLIFICATION_FACTOR",
    "COOKIE_BUCKET_S",
    "COOKIE_BYTES",
    "COOKIE_DATAGRAM_BYTES",
    "COOKIE_MAC_BYTES",
    "DATA_HEADER_BYTES",
    "DATA_OVERHEAD_BYTES",
    "EPHEMERAL_PREFIX_BYTES",
    "HANDSHAKE_TIMEOUT_S",
    "HEADER_BYTES",
    "HELLO_MIN_BYTES",
    "HELLO_PADDING_BYTES",
    "HELLO_RETRY_INITIAL_S",
    "HELLO_RETRY_MAX_S",
    "MAGIC",
    "MAX_COUNTER",
    "MAX_DATAGRAM_BYTES",
    "MAX_EPOCH_SKIP",
    "MAX_PAYLOAD_BYTES",
    "MAX_PENDING_PATHS",
    "MAX_PRELOGIN_PER_HOST",
    "MAX_QUEUED_DATAGRAMS",
    "PATH_CHALLENGE_INTERVAL_S",
    "PATH_DATAGRAM_BYTES",
    "PATH_TOKEN_BYTES",
    "PRELOGIN_TIMEOUT_S",
    "PROLOGUE",
    "PROTOCOL_NAME",
    "REKEY_AFTER_MESSAGES",
    "REKEY_AFTER_S",
    "REKEY_GRACE_S",
    "REPLAY_WINDOW_SIZE",
    "REPLAY_WINDOW_WORDS",
    "RESET_BYTES",
    "SESSION_ID_BYTES",
    "VERSION",
    "WELCOME_BYTES",
    "Address",
    "ChannelConfig",
    "ChannelData",
    "ChannelEvent",
    "ChannelStats",
    "ClientChannel",
    "DatagramKind",
    "HandshakeCompleted",
    "ReplayWindow",
    "ResetReceived",
    "ServerChannel",
    "ServerKeyChanged",
    "fingerprint",
]
