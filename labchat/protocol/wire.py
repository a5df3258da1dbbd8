"""Byte layouts of the session layer: the plaintext inside one encrypted DATA datagram.

The secure channel (channel.py) gives us authenticated, decrypted payloads. Each payload is a *packet*:

    u8   flags            bit 0: an ACK block follows
                          bit 1: ACK_NOW, acknowledge this packet without delay (a timeout probe)
    [ACK block]           u32 cumulative  every frame seq <= this has arrived (0: none yet)
                          u16 ack_delay_ms how long the receiver held this ack (for the RTT estimate)
                          u8  n_ranges    then n x (u32 first, u32 last): frames received above the
                                          cumulative point, ascending, at most MAX_ACK_RANGES
    frames...             until the end of the payload, each:
                          u8 kind, u32 seq, u16 length, body (length bytes)

Every frame is reliable: it carries a sequence number (per session and direction, from 1) that the other
side acknowledges. A frame body is one application message (messages.py), its fields in declared order:
integers big-endian, strings as u16 byte length + UTF-8, string lists as u16 count + strings. Bytes after
the last known field are ignored, so fields can be appended in later versions.

Everything here is pure and total: `decode_packet` and `decode_message` either return a value or raise
`DecodeError`, whatever bytes they are given (tests/protocol/test_wire.py checks that with hypothesis).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from typing import NamedTuple

from .errors import DecodeError, LocalProtocolError, ProtocolError
from .messages import MESSAGE_TYPES, Field, Message

#: The largest plaintext packet the session layer may hand to the channel. 1200-byte datagrams keep
#: clear of IP fragmentation on any LAN (QUIC's reasoning); the channel adds 37 bytes of header and tag.
MAX_PACKET_BYTES = 1200 - 37
#: SACK ranges carried in one ACK block; more gaps than this are reported on later acks.
MAX_ACK_RANGES = 16
#: Frame header: kind, seq, body length.
FRAME_HEADER_BYTES = 7
#: The largest frame body that still fits a packet that also carries a full ACK block.
MAX_FRAME_BODY_BYTES = MAX_PACKET_BYTES - 1 - (4 + 2 + 1 + 8 * MAX_ACK_RANGES) - FRAME_HEADER_BYTES

FLAG_ACK = 0x01
FLAG_ACK_NOW = 0x02
_KNOWN_FLAGS = FLAG_ACK | FLAG_ACK_NOW
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_ACK_HEAD = struct.Struct(">IHB")
_RANGE = struct.Struct(">II")
_FRAME_HEAD = struct.Struct(">BIH")
_INT_LIMITS = {Field.U8: 0xFF, Field.U16: 0xFFFF, Field.U32: 0xFFFF_FFFF, Field.U64: 2**64 - 1}
_INT_STRUCTS = {Field.U8: _U8, Field.U16: _U16, Field.U32: _U32, Field.U64: _U64}


# Ack, Frame and Packet are created for every datagram and every frame on both ends; as NamedTuples they
# are as immutable as frozen dataclasses and about three times cheaper to build.


class Ack(NamedTuple):
    """What a receiver has: everything up to `cumulative`, plus the `ranges` above it."""

    cumulative: int
    ranges: tuple[tuple[int, int], ...] = ()
    delay_ms: int = 0


class Frame(NamedTuple):
    """One reliable frame: an encoded message body with its kind and sequence number."""

    kind: int
    seq: int
    body: bytes


class Packet(NamedTuple):
    """A decoded packet: an optional ACK, zero or more frames, and whether the sender asks for an ACK now."""

    ack: Ack | None
    frames: tuple[Frame, ...]
    ack_now: bool = False


# ---------------------------------------------------------------- messages


def encode_message(message: Message) -> bytes:
    """Encode a message body (without the frame header)."""
    out = bytearray()
    for name, kind in message.FIELDS:
        value = getattr(message, name)
        if kind is Field.STR:
            _put_str(out, value)
        elif kind is Field.STRS:
            out += _U16.pack(len(value))
            for item in value:
                _put_str(out, item)
        elif kind is Field.BYTES:
            if len(value) > 0xFFFF:
                raise LocalProtocolError(f"{type(message).__name__}.{name}: too long for the wire")
            out += _U16.pack(len(value))
            out += value
        elif kind is Field.U32S:
            out += _U16.pack(len(value))
            for number in value:
                if not 0 <= number <= 0xFFFF_FFFF:
                    raise LocalProtocolError(f"{type(message).__name__}.{name}: {number} out of range")
                out += _U32.pack(number)
        elif kind is Field.CURSORS:
            out += _U16.pack(len(value))
            for room, seq in value:
                _put_str(out, room)
                if not 0 <= seq < 2**64:
                    raise LocalProtocolError(f"{type(message).__name__}.{name}: seq {seq} out of range")
                out += _U64.pack(seq)
        elif kind is Field.ADDRS:
            out += _U16.pack(len(value))
            for host, port in value:
                _put_str(out, host)
                if not 0 <= port <= 0xFFFF:
                    raise LocalProtocolError(f"{type(message).__name__}.{name}: port {port} out of range")
                out += _U16.pack(port)
        else:
            if not 0 <= value <= _INT_LIMITS[kind]:
                raise LocalProtocolError(f"{type(message).__name__}.{name}={value} out of range")
            out += _INT_STRUCTS[kind].pack(value)
    return bytes(out)


def _put_str(out: bytearray, value: str) -> None:
    data = value.encode("utf-8")
    if len(data) > 0xFFFF:
        raise LocalProtocolError("string too long for the wire")
    out += _U16.pack(len(data))
    out += data


def decode_message(kind: int, body: bytes) -> Message:
    """Decode a frame body into its message.

    Raises:
        DecodeError: unknown kind, truncated body, invalid UTF-8, or a value the message's own checks
            refuse (a bad name, an over-long text). The peer sent it, so it is the peer's error.
    """
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise DecodeError(f"unknown message kind {kind}")
    cls = decoder.cls
    try:
        return decoder.decode(body)
    except struct.error as exc:
        raise DecodeError(f"truncated {cls.__name__}") from exc
    except UnicodeDecodeError as exc:
        raise DecodeError(f"invalid UTF-8 in {cls.__name__}") from exc
    except ProtocolError as exc:
        raise DecodeError(f"invalid {cls.__name__}: {exc}", exc.code) from exc


_INT_CODES = {Field.U8: "B", Field.U16: "H", Field.U32: "I", Field.U64: "Q"}


class _Decoder:
    """A message class's field list compiled once into straight-line code, as `dataclasses` and
    `namedtuple` compile their methods: runs of integers become one `struct` call, each string two
    lines, and the class is called with positional arguments.

    Every received chat line goes through here once per recipient; the general field-by-field loop
    (a branch, a lookup and an append per field) cost twice as much.
    """

    __slots__ = ("cls", "decode")

    def __init__(self, cls: type[Message]) -> None:
        self.cls = cls
        names: dict[str, object] = {
            "_U16": _U16, "_error": struct.error, "_read_strs": _read_strs, "_read_cursors": _read_cursors,
            "_read_u32s": _read_u32s, "_read_addrs": _read_addrs,
        }  # fmt: skip
        lines = ["def decode(body):", "    pos = 0", "    size = len(body)"]
        values: list[str] = []
        run = ""

        def flush_run() -> None:
            nonlocal run
            if not run:
                return
            st = struct.Struct(">" + run)
            name = f"_s{len(names)}"
            names[name] = st
            targets = [f"v{len(values) + i}" for i in range(len(run))]
            values.extend(targets)
            lines.append(f"    {', '.join(targets)}, = {name}.unpack_from(body, pos)")
            lines.append(f"    pos += {st.size}")
            run = ""

        declared = [f.name for f in dataclasses.fields(cls)]
        by_position = declared[: len(cls.FIELDS)] == [name for name, _ in cls.FIELDS]
        names["_cls"] = cls

        def call(count: int) -> str:
            """Build the message from the first `count` wire fields (the rest take their defaults)."""
            if by_position:
                return f"_cls({', '.join(values[:count])})"
            # fields declared in another order than on the wire: call by name
            pairs = zip(cls.FIELDS[:count], values[:count], strict=True)
            return f"_cls({', '.join(f'{name}={v}' for (name, _), v in pairs)})"

        required = len(cls.FIELDS) if cls.REQUIRED_FIELDS is None else cls.REQUIRED_FIELDS
        for index, (_, ftype) in enumerate(cls.FIELDS):
            if index >= required:
                # An appended field: a sender of an earlier version ends the body before it.
                flush_run()
                lines.append("    if pos >= size:")
                lines.append(f"        return {call(index)}")
            if ftype in _INT_CODES:
                run += _INT_CODES[ftype]
                if index >= required:
                    flush_run()
                continue
            flush_run()
            target = f"v{len(values)}"
            values.append(target)
            if ftype is Field.STR:
                lines += [
                    "    (n,) = _U16.unpack_from(body, pos)",
                    "    pos += 2",
                    "    if pos + n > size:",
                    "        raise _error('string runs past the end')",
                    f"    {target} = body[pos:pos + n].decode('utf-8')",
                    "    pos += n",
                ]
            elif ftype is Field.CURSORS:
                lines.append(f"    {target}, pos = _read_cursors(body, pos)")
            elif ftype is Field.BYTES:
                lines += [
                    "    (n,) = _U16.unpack_from(body, pos)",
                    "    pos += 2",
                    "    if pos + n > size:",
                    "        raise _error('bytes run past the end')",
                    f"    {target} = bytes(body[pos:pos + n])",
                    "    pos += n",
                ]
            elif ftype is Field.U32S:
                lines.append(f"    {target}, pos = _read_u32s(body, pos)")
            elif ftype is Field.ADDRS:
                lines.append(f"    {target}, pos = _read_addrs(body, pos)")
            else:
                lines.append(f"    {target}, pos = _read_strs(body, pos)")
        flush_run()
        lines.append(f"    return {call(len(values))}")
        exec("\n".join(lines), names)  # our own source, built from the FIELDS tables above
        self.decode: Callable[[bytes], Message] = names["decode"]  # type: ignore[assignment]


def _read_strs(body: bytes, pos: int) -> tuple[tuple[str, ...], int]:
    (count,) = _U16.unpack_from(body, pos)
    pos += 2
    items = []
    for _ in range(count):
        (length,) = _U16.unpack_from(body, pos)
        pos += 2
        end = pos + length
        if end > len(body):
            raise struct.error("string runs past the end")
        items.append(body[pos:end].decode("utf-8"))
        pos = end
    return tuple(items), pos


def _read_u32s(body: bytes, pos: int) -> tuple[tuple[int, ...], int]:
    """A U32S field: u16 count, then count x U32 (docs/protocol.md 20.4)."""
    (count,) = _U16.unpack_from(body, pos)
    pos += 2
    end = pos + 4 * count
    if end > len(body):
        raise struct.error("list runs past the end")
    return struct.unpack_from(f">{count}I", body, pos), end


def _read_named_numbers(
    body: bytes, pos: int, number: struct.Struct
) -> tuple[tuple[tuple[str, int], ...], int]:
    """A u16 count, then count x (STR, `number`): the layout CURSORS and ADDRS share."""
    (count,) = _U16.unpack_from(body, pos)
    pos += 2
    items = []
    for _ in range(count):
        (length,) = _U16.unpack_from(body, pos)
        pos += 2
        end = pos + length
        if end > len(body):
            raise struct.error("string runs past the end")
        name = body[pos:end].decode("utf-8")
        (value,) = number.unpack_from(body, end)
        items.append((name, int(value)))
        pos = end + number.size
    return tuple(items), pos


def _read_cursors(body: bytes, pos: int) -> tuple[tuple[tuple[str, int], ...], int]:
    """A CURSORS field: u16 count, then count x (STR room, U64 seq) (docs/protocol.md 18.3)."""
    return _read_named_numbers(body, pos, _U64)


def _read_addrs(body: bytes, pos: int) -> tuple[tuple[tuple[str, int], ...], int]:
    """An ADDRS field: u16 count, then count x (STR host, U16 port) (docs/protocol.md 22.2)."""
    return _read_named_numbers(body, pos, _U16)


_DECODERS = {kind: _Decoder(cls) for kind, cls in MESSAGE_TYPES.items()}


# ---------------------------------------------------------------- packets


def encode_ack(ack: Ack) -> bytes:
    """The ACK block alone; `PacketBuilder` places it first in a packet."""
    ranges = ack.ranges[:MAX_ACK_RANGES]
    out = bytearray(_ACK_HEAD.pack(ack.cumulative, min(ack.delay_ms, 0xFFFF), len(ranges)))
    for first, last in ranges:
        out += _RANGE.pack(first, last)
    return bytes(out)


def encode_frame_header(kind: int, seq: int, body_len: int) -> bytes:
    """Frames are built once per message and re-headed per recipient, so the header is separate."""
    return _FRAME_HEAD.pack(kind, seq, body_len)


def encode_packet(
    ack: Ack | None, frames: list[Frame] | tuple[Frame, ...], *, ack_now: bool = False
) -> bytes:
    """Lay out a packet. The caller (reliability.py) has already checked that it fits."""
    flags = (FLAG_ACK if ack is not None else 0) | (FLAG_ACK_NOW if ack_now else 0)
    parts = [bytes((flags,)) + (encode_ack(ack) if ack is not None else b"")]
    for frame in frames:
        parts.append(_FRAME_HEAD.pack(frame.kind, frame.seq, len(frame.body)))
        parts.append(frame.body)
    return b"".join(parts)


def ack_block_size(ack: Ack) -> int:
    return _ACK_HEAD.size + _RANGE.size * min(len(ack.ranges), MAX_ACK_RANGES)


def decode_packet(data: bytes) -> Packet:
    """Split a packet into its ACK and frames. Frame bodies are left encoded (see `decode_message`).

    Raises:
        DecodeError: empty, truncated, unknown flag bits, a frame running past the end, seq 0, or
            ACK ranges that are not ascending and above the cumulative point.
    """
    if not data:
        raise DecodeError("empty packet")
    if len(data) > MAX_PACKET_BYTES:
        raise DecodeError(f"packet of {len(data)} bytes exceeds {MAX_PACKET_BYTES}")
    flags = data[0]
    if flags & ~_KNOWN_FLAGS:
        raise DecodeError(f"unknown packet flags {flags:#x}")
    pos = 1
    ack = None
    try:
        if flags & FLAG_ACK:
            cumulative, delay_ms, n_ranges = _ACK_HEAD.unpack_from(data, pos)
            pos += _ACK_HEAD.size
            if n_ranges > MAX_ACK_RANGES:
                raise DecodeError(f"{n_ranges} ACK ranges exceed {MAX_ACK_RANGES}")
            ranges = []
            floor = cumulative + 1
            for _ in range(n_ranges):
                first, last = _RANGE.unpack_from(data, pos)
                pos += _RANGE.size
                if first <= floor or last < first:
                    raise DecodeError("ACK ranges must ascend above the cumulative point")
                ranges.append((first, last))
                floor = last + 1
            ack = Ack(cumulative, tuple(ranges), delay_ms)
        frames = []
        end = len(data)
        while pos < end:
            kind, seq, length = _FRAME_HEAD.unpack_from(data, pos)
            pos += _FRAME_HEAD.size
            if seq == 0:
                raise DecodeError("frame seq 0 is reserved")
            if pos + length > end:
                raise DecodeError("frame runs past the end of the packet")
            frames.append(Frame(kind, seq, data[pos : pos + length]))
            pos += length
    except struct.error as exc:
        raise DecodeError("truncated packet") from exc
    return Packet(ack, tuple(frames), bool(flags & FLAG_ACK_NOW))
