"""Finding servers on the LAN (docs/protocol.md section 19): the DISCOVER probe and its answer.

Pure functions over bytes, as the rest of the protocol package: the client's socket loop is in
client/discover.py, the server's answer is given by `ServerChannel`. Parsing is total: whatever bytes
arrive, `parse_probe` and `parse_answer` return a value or None, never raise.
"""

from __future__ import annotations

from dataclasses import dataclass

from .channel_common import HEADER_BYTES, MAGIC, VERSION, DatagramKind, fingerprint
from .noise import DH_LEN_BYTES

#: A probe is exactly this long; an answer never longer, so discovery cannot amplify (19.1).
PROBE_BYTES = 128
NONCE_BYTES = 8
#: Longest server name in an answer, in UTF-8 bytes.
MAX_NAME_BYTES = 64
ANSWER_MIN_BYTES = HEADER_BYTES + NONCE_BYTES + DH_LEN_BYTES + 1
ANSWER_MAX_BYTES = ANSWER_MIN_BYTES + MAX_NAME_BYTES
_PROBE_HEADER = MAGIC + bytes((VERSION, DatagramKind.DISCOVER))
_ANSWER_HEADER = MAGIC + bytes((VERSION, DatagramKind.DISCOVERED))


@dataclass(frozen=True, slots=True)
class ServerFound:
    """One server that answered: where (the answer's source), its name and its key."""

    host: str
    port: int
    name: str
    public_key: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)


def encode_probe(nonce: bytes) -> bytes:
    if len(nonce) != NONCE_BYTES:
        raise ValueError("a probe nonce is 8 bytes")
    return _PROBE_HEADER + nonce + bytes(PROBE_BYTES - HEADER_BYTES - NONCE_BYTES)


def parse_probe(data: bytes) -> bytes | None:
    """The nonce of a well-formed DISCOVER, else None."""
    if len(data) != PROBE_BYTES or data[:HEADER_BYTES] != _PROBE_HEADER:
        return None
    return data[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]


def encode_answer(nonce: bytes, public_key: bytes, name: str) -> bytes:
    """A DISCOVERED for `nonce`; `name` is cut to 64 bytes, never inside a character."""
    raw = name.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", "ignore").encode("utf-8")
    if len(nonce) != NONCE_BYTES or len(public_key) != DH_LEN_BYTES:
        raise ValueError("bad nonce or key size")
    return _ANSWER_HEADER + nonce + public_key + bytes((len(raw),)) + raw


def parse_answer(data: bytes, nonce: bytes, source: tuple[str, int]) -> ServerFound | None:
    """The server a DISCOVERED describes, if it is well-formed and answers our `nonce`."""
    if not ANSWER_MIN_BYTES <= len(data) <= ANSWER_MAX_BYTES or data[:HEADER_BYTES] != _ANSWER_HEADER:
        return None
    pos = HEADER_BYTES
    if data[pos : pos + NONCE_BYTES] != nonce:
        return None
    pos += NONCE_BYTES
    key = data[pos : pos + DH_LEN_BYTES]
    pos += DH_LEN_BYTES
    length = data[pos]
    pos += 1
    if length > MAX_NAME_BYTES or len(data) != pos + length:
        return None
    try:
        name = data[pos:].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return ServerFound(source[0], source[1], name, bytes(key))
