"""Noise framework tests: the public cacophony vectors byte for byte, then NX and Rekey.

The vectors in noise_vectors.json are copied from `vectors/cacophony.txt` in
github.com/haskell-cryptography/cacophony (formerly centromere/cacophony), commit
8ee9d41e34a1a596cfa3ab12aa4069ff87dc1247, released into the public domain (Unlicense). Only the
eight NN/NK/XX/IK x SHA256/BLAKE2s entries are kept; the file's `_source` key says the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from labchat.protocol.errors import DecodeError, LocalProtocolError
from labchat.protocol.noise import (
    MAX_NONCE,
    PATTERNS,
    CipherState,
    HandshakeState,
    KeyPair,
    dh,
    hkdf,
)

VECTORS_PATH = Path(__file__).with_name("noise_vectors.json")
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text())["vectors"]


def _bytes(vector: dict[str, Any], key: str) -> bytes | None:
    return bytes.fromhex(vector[key]) if key in vector else None


def _pair(vector: dict[str, Any], key: str) -> KeyPair | None:
    raw = _bytes(vector, key)
    return KeyPair.from_private(raw) if raw is not None else None


def test_the_copy_holds_all_eight_vectors() -> None:
    names = sorted(v["protocol_name"] for v in VECTORS)
    expected = sorted(
        f"Noise_{p}_25519_ChaChaPoly_{h}" for p in ("NN", "NK", "XX", "IK") for h in ("SHA256", "BLAKE2s")
    )
    assert names == expected
    assert "cacophony" in json.loads(VECTORS_PATH.read_text())["_source"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["protocol_name"] for v in VECTORS])
def test_vector(vector: dict[str, Any]) -> None:
    name = vector["protocol_name"]
    initiator = HandshakeState(
        name,
        initiator=True,
        prologue=_bytes(vector, "init_prologue") or b"",
        s=_pair(vector, "init_static"),
        e=_pair(vector, "init_ephemeral"),
        rs=_bytes(vector, "init_remote_static"),
    )
    responder = HandshakeState(
        name,
        initiator=False,
        prologue=_bytes(vector, "resp_prologue") or b"",
        s=_pair(vector, "resp_static"),
        e=_pair(vector, "resp_ephemeral"),
    )
    handshake_messages = len(PATTERNS[name.split("_")[1]].messages)
    messages = vector["messages"]
    assert len(messages) > handshake_messages
    init_ciphers = resp_ciphers = None
    for index, message in enumerate(messages[:handshake_messages]):
        payload, expected = bytes.fromhex(message["payload"]), bytes.fromhex(message["ciphertext"])
        sender, receiver = (initiator, responder) if index % 2 == 0 else (responder, initiator)
        wire, sent_split = sender.write_message(payload)
        assert wire == expected, f"handshake message {index}"
        got, read_split = receiver.read_message(wire)
        assert got == payload
        if index == handshake_messages - 1:
            assert sent_split is not None and read_split is not None
            init_ciphers, resp_ciphers = (
                (sent_split, read_split) if sender is initiator else (read_split, sent_split)
            )
        else:
            assert sent_split is None and read_split is None
    assert initiator.complete and responder.complete
    assert initiator.handshake_hash() == responder.handshake_hash()
    assert initiator.handshake_hash() == bytes.fromhex(vector["handshake_hash"])
    assert init_ciphers is not None and resp_ciphers is not None
    # The remote static keys learned in the handshake are the real public keys.
    if "resp_static" in vector:
        resp_static = _pair(vector, "resp_static")
        assert resp_static is not None and initiator.rs == resp_static.public
    for index, message in enumerate(messages[handshake_messages:], start=handshake_messages):
        payload, expected = bytes.fromhex(message["payload"]), bytes.fromhex(message["ciphertext"])
        # Messages keep alternating: even from the initiator (first cipher), odd from the responder.
        direction = 0 if index % 2 == 0 else 1
        sender_cs = (init_ciphers if direction == 0 else resp_ciphers)[direction]
        receiver_cs = (resp_ciphers if direction == 0 else init_ciphers)[direction]
        wire = sender_cs.encrypt_with_ad(b"", payload)
        assert wire == expected, f"transport message {index}"
        assert receiver_cs.decrypt_with_ad(b"", wire) == payload


def test_first_bytes_of_message_zero_are_the_initiator_ephemeral() -> None:
    vector = VECTORS[0]
    ephemeral = _pair(vector, "init_ephemeral")
    assert ephemeral is not None
    assert bytes.fromhex(vector["messages"][0]["ciphertext"])[:32] == ephemeral.public


def _nx_pair(seed: int = 1) -> tuple[HandshakeState, HandshakeState, KeyPair]:
    server_static = KeyPair.from_private(bytes([seed]) * 32)
    client = HandshakeState("Noise_NX_25519_ChaChaPoly_SHA256", initiator=True, prologue=b"p")
    server = HandshakeState(
        "Noise_NX_25519_ChaChaPoly_SHA256", initiator=False, prologue=b"p", s=server_static
    )
    return client, server, server_static


def test_nx_handshake_transfers_the_server_static_key() -> None:
    client, server, server_static = _nx_pair()
    msg1, split = client.write_message(b"hello")
    assert split is None and msg1[32:] == b"hello"  # message 1 payload is in the clear
    assert server.read_message(msg1) == (b"hello", None)
    msg2, server_split = server.write_message(b"welcome")
    assert len(msg2) == 32 + 48 + len(b"welcome") + 16
    payload, client_split = client.read_message(msg2)
    assert payload == b"welcome"
    assert client.rs == server_static.public
    assert client.handshake_hash() == server.handshake_hash()
    assert server_split is not None and client_split is not None
    up = client_split[0].encrypt_with_ad(b"ad", b"up")
    assert server_split[0].decrypt_with_ad(b"ad", up) == b"up"
    assert client_split[1].decrypt_with_ad(b"", server_split[1].encrypt_with_ad(b"", b"dn")) == b"dn"


def test_nx_tampered_message_two_fails_and_copy_survives() -> None:
    client, server, _ = _nx_pair()
    msg1, _ = client.write_message(b"")
    server.read_message(msg1)
    msg2, _ = server.write_message(b"x")
    for position in (0, 40, len(msg2) - 1):
        forged = bytearray(msg2)
        forged[position] ^= 1
        with pytest.raises(DecodeError):
            client.copy().read_message(bytes(forged))
    payload, split = client.read_message(msg2)
    assert payload == b"x" and split is not None


def test_nx_with_an_all_zero_ephemeral_is_refused() -> None:
    _, server, _ = _nx_pair()
    server.read_message(bytes(32))  # a low-order point: the DH in the reply must refuse it
    with pytest.raises(DecodeError):
        server.write_message(b"")


def test_wrong_turn_and_truncation_are_errors() -> None:
    client, server, _ = _nx_pair()
    with pytest.raises(LocalProtocolError):
        client.read_message(b"")
    with pytest.raises(DecodeError):
        server.read_message(b"short")
    with pytest.raises(LocalProtocolError):
        HandshakeState("Noise_NK_25519_ChaChaPoly_SHA256", initiator=True)  # needs rs
    with pytest.raises(LocalProtocolError):
        HandshakeState("Noise_KK_25519_AESGCM_SHA512", initiator=True)


def test_rekey_matches_the_spec_definition_and_keeps_the_nonce() -> None:
    key = bytes(range(32))
    cipher = CipherState(key)
    cipher.encrypt_with_ad(b"", b"a")
    cipher.rekey()
    assert cipher.n == 1
    # REKEY(k) = ENCRYPT(k, maxnonce, zerolen, zeros) truncated to 32 bytes (section 4.2).
    expected = ChaCha20Poly1305(key).encrypt(b"\0" * 4 + MAX_NONCE.to_bytes(8, "little"), bytes(32), b"")
    assert cipher.k == expected[:32]
    # Both ends rekeying in step keep talking; a side that did not rekey cannot read.
    sender, receiver, stale = CipherState(key), CipherState(key), CipherState(key)
    sender.rekey()
    receiver.rekey()
    wire = sender.encrypt_with_ad(b"", b"after")
    assert receiver.decrypt_with_ad(b"", wire) == b"after"
    with pytest.raises(DecodeError):
        stale.decrypt_with_ad(b"", wire)
    assert stale.n == 0  # a failed decryption does not consume the nonce


def test_reserved_nonce_and_keyless_cipher() -> None:
    cipher = CipherState(bytes(32))
    cipher.set_nonce(MAX_NONCE)
    with pytest.raises(LocalProtocolError):
        cipher.encrypt_with_ad(b"", b"x")
    empty = CipherState()
    assert empty.encrypt_with_ad(b"", b"plain") == b"plain"
    with pytest.raises(LocalProtocolError):
        empty.rekey()


def test_hkdf_and_dh_helpers() -> None:
    assert len(hkdf("SHA256", bytes(32), b"x", 3)) == 3
    with pytest.raises(LocalProtocolError):
        hkdf("SHA256", bytes(32), b"x", 4)
    a, b = KeyPair.from_private(bytes([1]) * 32), KeyPair.from_private(bytes([2]) * 32)
    assert dh(a.private, b.public) == dh(b.private, a.public)
    with pytest.raises(DecodeError):
        dh(a.private, b"short")
    fixed = iter([bytes([7]) * 32])
    assert KeyPair.generate(lambda n: next(fixed)) == KeyPair.from_private(bytes([7]) * 32)
