"""The Noise Protocol Framework (revision 34), sans-I/O, on pyca `cryptography` primitives.

Why write this at all: labchat needs one well-studied handshake (Noise NX), and the Python
Noise packages are unmaintained or bring their own crypto. The framework is small and fully
specified, so a table-driven implementation on audited primitives (X25519, ChaCha20-Poly1305,
SHA-256/BLAKE2s, HMAC) is short enough to review line by line, and it is checked byte for byte
against the public cacophony test vectors. Names follow the specification (CipherState,
SymmetricState, HandshakeState, MixKey, MixHash, Split, Rekey): read the two side by side.

Supported: DH 25519, cipher ChaChaPoly, hash SHA256 or BLAKE2s; patterns NN, NK, NX, XX, IK. No PSK
modes and no fallback: labchat does not use them and unused code is unreviewed code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from labchat.protocol.errors import DecodeError, LocalProtocolError

#: Length of an X25519 public key and of a DH output (the spec's DHLEN).
DH_LEN_BYTES = 32
#: Length of both supported hash outputs (the spec's HASHLEN).
HASH_LEN_BYTES = 32
#: Length of a ChaCha20-Poly1305 key.
KEY_LEN_BYTES = 32
#: Length of the Poly1305 authentication tag appended to every ciphertext.
TAG_LEN_BYTES = 16
#: Largest Noise message; the spec caps every message, handshake or transport, at 65535 bytes.
MAX_MESSAGE_BYTES = 65535
#: The nonce value 2^64-1 is reserved: it is used only by Rekey(), never for a message.
MAX_NONCE = 2**64 - 1

Rng = Callable[[int], bytes]


class Token(Enum):
    """A handshake pattern token. The value is the spelling used in the specification."""

    E = "e"
    S = "s"
    EE = "ee"
    ES = "es"
    SE = "se"
    SS = "ss"


@dataclass(frozen=True, slots=True)
class HandshakePattern:
    """One row of the spec's pattern table: pre-messages, then message patterns in order.

    `initiator_pre` / `responder_pre` hold the public keys known before the handshake starts (only
    `s` is used by the supported patterns). `messages[0]` is sent by the initiator, `messages[1]` by
    the responder, and so on alternately.
    """

    name: str
    initiator_pre: tuple[Token, ...]
    responder_pre: tuple[Token, ...]
    messages: tuple[tuple[Token, ...], ...]


_E, _S, _EE, _ES, _SE, _SS = Token.E, Token.S, Token.EE, Token.ES, Token.SE, Token.SS

#: The supported patterns, transcribed from section 7 of the specification.
PATTERNS: dict[str, HandshakePattern] = {
    "NN": HandshakePattern("NN", (), (), ((_E,), (_E, _EE))),
    "NK": HandshakePattern("NK", (), (_S,), ((_E, _ES), (_E, _EE))),
    "NX": HandshakePattern("NX", (), (), ((_E,), (_E, _EE, _S, _ES))),
    "XX": HandshakePattern("XX", (), (), ((_E,), (_E, _EE, _S, _ES), (_S, _SE))),
    "IK": HandshakePattern("IK", (), (_S,), ((_E, _ES, _S, _SS), (_E, _EE, _SE))),
}

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "BLAKE2s": lambda: hashes.BLAKE2s(32),
}


def _hash(algorithm: str, data: bytes) -> bytes:
    digest = hashes.Hash(_HASHES[algorithm]())
    digest.update(data)
    return digest.finalize()


def _hmac(algorithm: str, key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, _HASHES[algorithm]())
    mac.update(data)
    return mac.finalize()


def hkdf(algorithm: str, chaining_key: bytes, ikm: bytes, num_outputs: int) -> tuple[bytes, ...]:
    """HKDF as section 4.3 of the spec defines it (RFC 5869, empty info, 2 or 3 outputs)."""
    if num_outputs not in (2, 3):
        raise LocalProtocolError("HKDF produces 2 or 3 outputs")
    temp_key = _hmac(algorithm, chaining_key, ikm)
    out1 = _hmac(algorithm, temp_key, b"\x01")
    out2 = _hmac(algorithm, temp_key, out1 + b"\x02")
    if num_outputs == 2:
        return out1, out2
    return out1, out2, _hmac(algorithm, temp_key, out2 + b"\x03")


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An X25519 key pair as raw bytes; raw bytes keep the API free of pyca object types."""

    private: bytes
    public: bytes

    @classmethod
    def from_private(cls, private: bytes) -> KeyPair:
        """Derive the public half; raises LocalProtocolError unless `private` is 32 bytes."""
        if len(private) != DH_LEN_BYTES:
            raise LocalProtocolError("an X25519 private key is 32 bytes")
        key = X25519PrivateKey.from_private_bytes(private)
        return cls(private, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @classmethod
    def generate(cls, rng: Rng = os.urandom) -> KeyPair:
        """A fresh key pair from `rng`, so tests can make handshakes deterministic."""
        return cls.from_private(rng(DH_LEN_BYTES))


def dh(private: bytes, public: bytes) -> bytes:
    """X25519; raises DecodeError for a malformed or low-order peer key (all-zero output).

    Rejecting the all-zero output is allowed by the spec (section 12.1) and stops a peer from
    forcing a known shared secret.
    """
    try:
        peer = X25519PublicKey.from_public_bytes(public)
        return X25519PrivateKey.from_private_bytes(private).exchange(peer)
    except ValueError as exc:
        raise DecodeError("invalid X25519 public key") from exc


def _nonce_bytes(n: int) -> bytes:
    # ChaChaPoly nonce (section 12.3): 32 bits of zeros, then the 64-bit counter little-endian.
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


class CipherState:
    """A key `k` (or none) and a nonce counter `n` (section 5.1)."""

    __slots__ = ("_aead", "k", "n")

    def __init__(self, key: bytes | None = None) -> None:
        self.k: bytes | None = None
        self.n = 0
        self._aead: ChaCha20Poly1305 | None = None
        self.initialize_key(key)

    def initialize_key(self, key: bytes | None) -> None:
        """Set `k` and reset `n`. The AEAD object is built on first use (see `_context`)."""
        if key is not None and len(key) != KEY_LEN_BYTES:
            raise LocalProtocolError("a ChaChaPoly key is 32 bytes")
        self.k = key
        self.n = 0
        self._aead = None

    def has_key(self) -> bool:
        return self.k is not None

    def _context(self) -> ChaCha20Poly1305 | None:
        """The AEAD object for `k` (None without a key), built on first use and then cached.

        Cached because it is used for every message; built lazily because it is big: pyca keeps two
        initialised OpenSSL cipher contexts in it, about 2.3 KB outside the Python heap, and a handshake
        mixes keys it never encrypts with, while a server holds two CipherStates per idle session.
        """
        aead = self._aead
        if aead is None and self.k is not None:
            aead = self._aead = ChaCha20Poly1305(self.k)
        return aead

    def release_context(self) -> None:
        """Free the cached AEAD object; the key stays, and the next use rebuilds it (about 1 µs).

        For a server with many idle sessions: their contexts would be most of their memory.
        """
        self._aead = None

    def set_nonce(self, nonce: int) -> None:
        """SetNonce(): used by labchat's datagram layer, where the nonce travels in the clear."""
        if not 0 <= nonce <= MAX_NONCE:
            raise LocalProtocolError("nonce out of range")
        self.n = nonce

    def copy(self) -> CipherState:
        clone = CipherState(self.k)
        clone.n = self.n
        return clone

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        aead = self._aead or self._context()
        if aead is None:
            return plaintext
        if self.n >= MAX_NONCE:
            raise LocalProtocolError("nonce exhausted: rekey or start a new session")
        ciphertext = aead.encrypt(_nonce_bytes(self.n), plaintext, ad)
        self.n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Decrypt; on failure raise DecodeError and leave `n` unchanged, as the spec requires."""
        aead = self._aead or self._context()
        if aead is None:
            return ciphertext
        if self.n >= MAX_NONCE:
            raise DecodeError("nonce exhausted")
        try:
            plaintext = aead.decrypt(_nonce_bytes(self.n), ciphertext, ad)
        except InvalidTag as exc:
            raise DecodeError("authentication failed") from exc
        self.n += 1
        return plaintext

    def rekey(self) -> None:
        """Rekey(): k = first 32 bytes of ENCRYPT(k, 2^64-1, "", 32 zero bytes); `n` is kept.

        A one-way function of the old key, so a key captured later cannot decrypt older traffic.
        """
        aead = self._aead or self._context()
        if aead is None:
            raise LocalProtocolError("cannot rekey a CipherState without a key")
        block = aead.encrypt(_nonce_bytes(MAX_NONCE), bytes(KEY_LEN_BYTES), b"")
        new_key = block[:KEY_LEN_BYTES]
        n = self.n
        self.initialize_key(new_key)
        self.n = n


class SymmetricState:
    """The chaining key `ck`, handshake hash `h` and the current CipherState (section 5.2)."""

    __slots__ = ("cipher", "ck", "h", "hash_name")

    def __init__(self, protocol_name: bytes, hash_name: str) -> None:
        self.hash_name = hash_name
        if len(protocol_name) <= HASH_LEN_BYTES:
            self.h = protocol_name.ljust(HASH_LEN_BYTES, b"\x00")
        else:
            self.h = _hash(hash_name, protocol_name)
        self.ck = self.h
        self.cipher = CipherState()

    def copy(self) -> SymmetricState:
        clone = SymmetricState.__new__(SymmetricState)
        clone.hash_name, clone.h, clone.ck = self.hash_name, self.h, self.ck
        clone.cipher = self.cipher.copy()
        return clone

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = hkdf(self.hash_name, self.ck, ikm, 2)
        self.cipher.initialize_key(temp_k[:KEY_LEN_BYTES])

    def mix_hash(self, data: bytes) -> None:
        self.h = _hash(self.hash_name, self.h + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """Two transport CipherStates: (initiator-to-responder, responder-to-initiator)."""
        temp_k1, temp_k2 = hkdf(self.hash_name, self.ck, b"", 2)
        return CipherState(temp_k1[:KEY_LEN_BYTES]), CipherState(temp_k2[:KEY_LEN_BYTES])


def parse_protocol_name(name: str) -> tuple[HandshakePattern, str]:
    """Check a `Noise_<pattern>_25519_ChaChaPoly_<hash>` name and return its pattern and hash."""
    parts = name.split("_")
    if (
        len(parts) != 5
        or parts[0] != "Noise"
        or parts[1] not in PATTERNS
        or parts[2] != "25519"
        or parts[3] != "ChaChaPoly"
        or parts[4] not in _HASHES
    ):
        raise LocalProtocolError(f"unsupported Noise protocol {name!r}")
    return PATTERNS[parts[1]], parts[4]


class HandshakeState:
    """Runs one handshake pattern for one side (section 5.3).

    `e` may be given to fix the ephemeral key (test vectors); otherwise it is generated from `rng`
    when the first `e` token is written. After the last message, `write_message`/`read_message`
    return the Split() pair and `complete` becomes True.

    A failed `read_message` leaves the state undefined, as in the spec. Callers on an
    unauthenticated transport who must survive a forged message read into `copy()` and keep the
    copy only on success.
    """

    def __init__(
        self,
        protocol_name: str,
        initiator: bool,
        prologue: bytes = b"",
        s: KeyPair | None = None,
        e: KeyPair | None = None,
        rs: bytes | None = None,
        re: bytes | None = None,
        rng: Rng = os.urandom,
    ) -> None:
        self.pattern, hash_name = parse_protocol_name(protocol_name)
        self.initiator = initiator
        self.s, self.e, self.rs, self.re = s, e, rs, re
        self._rng = rng
        self.symmetric = SymmetricState(protocol_name.encode("ascii"), hash_name)
        self.symmetric.mix_hash(prologue)
        self._message_index = 0
        self.complete = False
        # Pre-messages: the initiator's first, then the responder's (section 5.3, Initialize()).
        for tokens, mine in (
            (self.pattern.initiator_pre, initiator),
            (self.pattern.responder_pre, not initiator),
        ):
            for token in tokens:
                if token is not Token.S:
                    raise LocalProtocolError("only static keys are supported in pre-messages")
                local = self.s.public if self.s is not None else None
                key = local if mine else self.rs
                if key is None:
                    raise LocalProtocolError(
                        f"pattern {self.pattern.name} needs a pre-shared static key"
                    )
                self.symmetric.mix_hash(key)

    def copy(self) -> HandshakeState:
        clone = HandshakeState.__new__(HandshakeState)
        clone.pattern, clone.initiator = self.pattern, self.initiator
        clone.s, clone.e, clone.rs, clone.re = self.s, self.e, self.rs, self.re
        clone._rng = self._rng
        clone.symmetric = self.symmetric.copy()
        clone._message_index = self._message_index
        clone.complete = self.complete
        return clone

    @property
    def is_my_turn(self) -> bool:
        """True when the next message is ours to write (the initiator writes the even ones)."""
        return (self._message_index % 2 == 0) == self.initiator

    def handshake_hash(self) -> bytes:
        """GetHandshakeHash(): a transcript hash both sides share, usable for channel binding."""
        return self.symmetric.h

    def _next_tokens(self, writing: bool) -> tuple[Token, ...]:
        if self.complete:
            raise LocalProtocolError("handshake already complete")
        if self.is_my_turn != writing:
            raise LocalProtocolError("not this side's turn in the handshake")
        return self.pattern.messages[self._message_index]

    def _dh_token(self, token: Token) -> None:
        # For es / se the initiator and responder pick mirror-image keys (section 5.3).
        if token is Token.EE:
            pair, public = self.e, self.re
        elif token is Token.SS:
            pair, public = self.s, self.rs
        elif (token is Token.ES) == self.initiator:
            pair, public = self.e, self.rs
        else:
            pair, public = self.s, self.re
        if pair is None or public is None:
            raise LocalProtocolError(f"handshake token {token.value!r} needs a key this side lacks")
        self.symmetric.mix_key(dh(pair.private, public))

    def _finish_message(self) -> tuple[CipherState, CipherState] | None:
        self._message_index += 1
        if self._message_index == len(self.pattern.messages):
            self.complete = True
            return self.symmetric.split()
        return None

    def write_message(self, payload: bytes) -> tuple[bytes, tuple[CipherState, CipherState] | None]:
        """WriteMessage(): the message bytes, and the Split() pair if this was the last message."""
        tokens = self._next_tokens(writing=True)
        out = bytearray()
        for token in tokens:
            if token is Token.E:
                if self.e is None:
                    self.e = KeyPair.generate(self._rng)
                out += self.e.public
                self.symmetric.mix_hash(self.e.public)
            elif token is Token.S:
                if self.s is None:
                    raise LocalProtocolError("handshake needs a local static key")
                out += self.symmetric.encrypt_and_hash(self.s.public)
            else:
                self._dh_token(token)
        out += self.symmetric.encrypt_and_hash(payload)
        if len(out) > MAX_MESSAGE_BYTES:
            raise LocalProtocolError("Noise message longer than 65535 bytes")
        return bytes(out), self._finish_message()

    def read_message(self, message: bytes) -> tuple[bytes, tuple[CipherState, CipherState] | None]:
        """ReadMessage(): the payload, and the Split() pair if this was the last message.

        Raises DecodeError for a truncated message, a bad key or a failed authentication.
        """
        tokens = self._next_tokens(writing=False)
        if len(message) > MAX_MESSAGE_BYTES:
            raise DecodeError("Noise message longer than 65535 bytes")
        pos = 0
        for token in tokens:
            if token is Token.E:
                if len(message) - pos < DH_LEN_BYTES:
                    raise DecodeError("truncated ephemeral key")
                self.re = message[pos : pos + DH_LEN_BYTES]
                pos += DH_LEN_BYTES
                self.symmetric.mix_hash(self.re)
            elif token is Token.S:
                size = DH_LEN_BYTES + (TAG_LEN_BYTES if self.symmetric.cipher.has_key() else 0)
                if len(message) - pos < size:
                    raise DecodeError("truncated static key")
                self.rs = self.symmetric.decrypt_and_hash(message[pos : pos + size])
                pos += size
            else:
                self._dh_token(token)
        if self.symmetric.cipher.has_key() and len(message) - pos < TAG_LEN_BYTES:
            raise DecodeError("truncated payload")
        payload = self.symmetric.decrypt_and_hash(message[pos:])
        return payload, self._finish_message()
