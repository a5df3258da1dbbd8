"""Putting a long message back together from its parts (docs/protocol.md sections 15.2 and 15.3).

A frame holds about 1 KB, a long message up to 16 KB, so a long message travels as consecutive part
frames: SAY_PART from a client, MESSAGE_PART, PRIVATE_PART and HISTORY_ENTRY from the server. The
reliable link delivers frames in order and exactly once within a session, and each sender puts the
parts of one message next to each other, so a receiver needs room for only one message at a time:
that bounds what a peer can make it hold to one message's worth (16 KB), whatever it sends.

Both ends use `Reassembler`; it knows nothing of the message kinds, only of (key, index, count, text).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from .errors import ErrorCode, RemoteProtocolError
from .messages import MAX_LONG_TEXT_BYTES


@dataclass(slots=True)
class _Partial:
    key: Hashable
    count: int
    texts: list[str] = field(default_factory=list)
    received: int = 0
    size: int = 0
    refused: bool = False  # over the limit: swallow the rest of its parts quietly


class Reassembler:
    """One long message being reassembled. See the module docstring.

    `key` names the message (its msg_id and destination, or its room seq): every part of one message
    carries the same key and count, and indexes 0, 1, 2, ... in that order.
    """

    __slots__ = ("_partial", "limit")

    def __init__(self, limit: int = MAX_LONG_TEXT_BYTES) -> None:
        self.limit = limit
        self._partial: _Partial | None = None

    @property
    def busy(self) -> bool:
        """True while a message has some of its parts but not the last."""
        return self._partial is not None

    def reset(self) -> None:
        """Forget the message under way (its session ended: the sender resends it whole)."""
        self._partial = None

    def feed(self, key: Hashable, index: int, count: int, text: str) -> str | None:
        """Take one part; return the whole text when this was the last part, else None.

        A part with index 0 always starts a new message, replacing one under way (check `busy`
        first to tell the sender about that).

        Raises:
            RemoteProtocolError: BAD_PARTS for a part that neither starts a message nor continues the
                one under way (which is dropped), TOO_LONG once for a message whose parts add up to
                more than `limit` UTF-8 bytes (its remaining parts are then ignored).
        """
        partial = self._partial
        if index == 0:
            partial = self._partial = _Partial(key, count)
        elif partial is None or partial.key != key or partial.count != count or index != partial.received:
            self._partial = None
            raise RemoteProtocolError(
                f"part {index + 1} of {count} does not continue the message under way", ErrorCode.BAD_PARTS
            )
        partial.received += 1
        last = index == count - 1
        if last:
            self._partial = None
        if partial.refused:
            return None
        partial.size += len(text.encode("utf-8"))
        if partial.size > self.limit:
            partial.refused = True
            partial.texts.clear()
            raise RemoteProtocolError(f"message too long: over {self.limit // 1024} KB", ErrorCode.TOO_LONG)
        partial.texts.append(text)
        return "".join(partial.texts) if last else None
