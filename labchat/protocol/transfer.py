"""File transfers of a client (docs/protocol.md 21), sans-I/O: what to send, what arrived, how far.

An upload goes: offer (FILE_OFFER) -> FILE_STATE says where to go on from (0, or the bytes the server
kept of an earlier try) -> FILE_CHUNKs in order, a few at a time as the link drains -> FILE_STATE
"stored" (or BAD_CHECKSUM), or a REQUEST_DONE refusal (too large, quota, name) before any byte.
After a reconnect the offer is sent again and the server's answer says where to resume.

A download goes: the user accepts an offer -> FILE_GET from the bytes held -> FILE_DATA in order ->
the SHA-256 of the whole, computed as the bytes arrive, is checked against the offer's -> done.
After a reconnect FILE_GET is sent again from the bytes held.

Nothing here reads a file or a clock. The owner (the client core) reads the file being uploaded and
hands the bytes in (`wants` / `feed`), and writes the bytes of a download (`FileChunkReceived`
events) to disk; the clock is the `now` every call takes. Progress (rate, time left) is measured
with that clock and reported at most `PROGRESS_EVERY_S` apart per transfer, and at the end.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from . import events as ev
from . import messages as m
from .errors import ErrorCode, LocalProtocolError
from .text import neutralize

#: Progress events of one transfer at most this often (the app's bar; line mode prints each second).
PROGRESS_EVERY_S = 0.25
#: Bytes of an upload the owner keeps read ahead of what has gone to the link.
READ_AHEAD = 256 * 1024
#: Read this much at once when the read-ahead runs low: a few system calls per megabyte.
READ_BLOCK = 128 * 1024
#: FILE_STATE's text once the server has verified and kept an upload (21.3 step 4).
STORED = "stored"
#: The rate is measured over about this long, so that it follows the link without jumping about.
RATE_WINDOW_S = 2.0


class State(Enum):
    """Where a transfer is. Uploads: OFFERING -> SENDING -> STORED; downloads: OFFERED -> RECEIVING ->
    DONE. Either may end FAILED or CANCELLED; an offer may be DECLINED."""

    OFFERING = "offering"
    SENDING = "sending"
    STORED = "stored"
    OFFERED = "offered"
    RECEIVING = "receiving"
    DONE = "done"
    DECLINED = "declined"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def over(self) -> bool:
        return self in (State.STORED, State.DONE, State.DECLINED, State.FAILED, State.CANCELLED)


class Progress:
    """Bytes done of `size`, the rate over the last couple of seconds and the time left."""

    __slots__ = ("_last_report", "_samples", "done", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.done = 0
        self._samples: list[tuple[float, int]] = []
        self._last_report: float | None = None

    def restart(self, done: int, now: float) -> None:
        """Resumed from `done` (after a reconnect): the rate starts over, not counting the outage."""
        self.done = done
        self._samples = [(now, done)]

    def update(self, done: int, now: float) -> None:
        self.done = done
        samples = self._samples
        if not samples:
            samples.append((now, done))
            return
        if now - samples[-1][0] >= 0.05 or done >= self.size:
            samples.append((now, done))
            while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW_S:
                samples.pop(0)

    @property
    def rate_bps(self) -> float:
        """Bytes per second over the window (0.0 until there are two samples some time apart)."""
        if len(self._samples) < 2:
            return 0.0
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.rate_bps
        if self.done >= self.size:
            return 0.0
        return (self.size - self.done) / rate if rate > 0 else None

    def due(self, now: float) -> bool:
        """True when a progress report is due (and counts it as made)."""
        if self._last_report is not None and now - self._last_report < PROGRESS_EVERY_S:
            return False
        self._last_report = now
        return True


@dataclass(slots=True)
class Upload:
    """One file we offer, from the offer until the server has stored it (or it failed)."""

    local_id: int
    name: str
    size: int
    sha256: bytes
    room: str
    to: str
    mime: str
    folder: bool
    state: State = State.OFFERING
    #: The server's id for it, from the first FILE_STATE (0 until then).
    file_id: int = 0
    #: The request id of the FILE_OFFER in flight (0: not sent on this session yet).
    request_id: int = 0
    #: The next offset to put on the link; the read-ahead starts here.
    sent: int = 0
    #: Bytes read ahead from the file, starting at `sent`.
    buffer: bytearray = field(default_factory=bytearray)
    progress: Progress = field(init=False)

    def __post_init__(self) -> None:
        self.progress = Progress(self.size)

    def offer(self, request_id: int) -> m.FileOffer:
        self.request_id = request_id
        flags = m.FILE_FOLDER if self.folder else 0
        return m.FileOffer(
            request_id, self.room, self.to, self.name, self.size, self.sha256, self.mime, flags
        )

    def wants(self) -> tuple[int, int] | None:
        """(offset, length) the owner should read and `feed`, or None while the read-ahead is full."""
        if self.state is not State.SENDING:
            return None
        end = self.sent + len(self.buffer)
        if end >= self.size or len(self.buffer) >= READ_AHEAD - READ_BLOCK:
            return None
        return end, min(READ_BLOCK, self.size - end)

    def feed(self, offset: int, data: bytes) -> None:
        """Bytes read from the file at `offset` (ignored unless they extend the read-ahead: a read
        that raced a resume is simply asked for again)."""
        if self.state is State.SENDING and offset == self.sent + len(self.buffer):
            self.buffer += data[: self.size - offset]

    def chunks(self, budget: int) -> list[m.FileChunk]:
        """Up to `budget` FILE_CHUNKs from the read-ahead, in order."""
        out: list[m.FileChunk] = []
        while budget > 0 and self.buffer and self.state is State.SENDING:
            piece = bytes(self.buffer[: m.MAX_CHUNK_BYTES])
            del self.buffer[: len(piece)]
            out.append(m.FileChunk(self.file_id, self.sent, piece))
            self.sent += len(piece)
            budget -= 1
        return out

    def resume_at(self, received: int, now: float) -> None:
        """Go on from `received` (the server's word): drop the read-ahead unless it starts there."""
        received = max(0, min(received, self.size))
        if received != self.sent:
            self.buffer.clear()
            self.sent = received
        self.progress.restart(received, now)


@dataclass(slots=True)
class Download:
    """One offer made to us, and its download once accepted."""

    offer: ev.FileOffered
    sha256: bytes
    state: State = State.OFFERED
    received: int = 0
    #: FILE_GET to send on this session (accepted, or resumed after a reconnect).
    get_unsent: bool = False
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)
    progress: Progress = field(init=False)

    def __post_init__(self) -> None:
        self.progress = Progress(self.offer.size)

    @property
    def size(self) -> int:
        return self.offer.size


class Transfers:
    """Every upload and download of one connection. The connection routes FILE_* messages here and
    asks, while building datagrams, for what to send (`messages_to_send`)."""

    def __init__(self, events: deque[ev.Event] | None = None) -> None:
        """`events`: where to report (the connection's own queue), or a queue of its own."""
        self.uploads: dict[int, Upload] = {}  # by local id
        self.downloads: dict[int, Download] = {}  # by the server's file id, every offer seen
        self._local_counter = 0
        self._events: deque[ev.Event] = deque() if events is None else events
        self._offers_unsent = False
        self._listings: dict[int, str] = {}  # FILES request id -> room
        self.listings_unsent: list[m.ListFiles] = []

    # ------------------------------------------------------------ the owner's side

    def new_local_id(self) -> int:
        self._local_counter += 1
        return self._local_counter

    def upload(
        self,
        local_id: int,
        name: str,
        size: int,
        sha256: bytes,
        *,
        room: str,
        to: str,
        mime: str,
        folder: bool,
    ) -> Upload:
        """Start an upload (sent as soon as the connection is online).

        Raises:
            LocalProtocolError: a name the server would refuse, a bad size, digest or mime hint.
        """
        problem = m.file_name_problem(name)
        if problem is not None:
            raise LocalProtocolError(f"cannot send a file named {name!r}: {problem}", ErrorCode.BAD_FILE_NAME)
        if size < 0 or len(sha256) != m.SHA256_BYTES:
            raise LocalProtocolError("a file needs a size and a SHA-256", ErrorCode.BAD_MESSAGE)
        mime = mime if len(mime.encode("utf-8", "replace")) <= m.MAX_MIME_BYTES else ""
        up = Upload(local_id, name, size, sha256, room, to, mime, folder)
        self.uploads[local_id] = up
        self._offers_unsent = True
        return up

    def accept(self, file_id: int, now: float) -> Download:
        """Start (or restart, after a failure) the download of offer `file_id`.

        Raises:
            LocalProtocolError: no such offer, or it is being downloaded already.
        """
        down = self.downloads.get(file_id)
        if down is None:
            raise LocalProtocolError(f"no file offer {file_id}: /files lists them", ErrorCode.NO_SUCH_FILE)
        if down.state is State.RECEIVING:
            raise LocalProtocolError(f"{down.offer.name} is being downloaded already")
        if down.state is State.DONE:
            raise LocalProtocolError(f"{down.offer.name} was saved already")
        down.state = State.RECEIVING
        down.received = 0
        down.hasher = hashlib.sha256()
        down.progress = Progress(down.size)
        down.progress.restart(0, now)
        down.get_unsent = True
        if down.size == 0:
            self._finish_download(down, now)
        return down

    def decline(self, file_id: int) -> Download:
        """Say no to offer `file_id` (nothing is sent: an offer is only a suggestion).

        Raises:
            LocalProtocolError: no such offer.
        """
        down = self.downloads.get(file_id)
        if down is None:
            raise LocalProtocolError(f"no file offer {file_id}: /files lists them", ErrorCode.NO_SUCH_FILE)
        if down.state is State.OFFERED:
            down.state = State.DECLINED
        return down

    def cancel_download(self, file_id: int, reason: str, now: float) -> m.FileCancel | None:
        """Stop a download (the owner could not write it, or the user cancelled): the FILE_CANCEL to
        send, and a `FileFailed` with `reason`."""
        down = self.downloads.get(file_id)
        if down is None or down.state is not State.RECEIVING:
            return None
        down.state = State.CANCELLED
        down.get_unsent = False
        self._events.append(ev.FileFailed(file_id, down.offer.name, "down", reason))
        return m.FileCancel(file_id, "")

    def cancel_upload(self, local_id: int, reason: str) -> m.FileCancel | None:
        """Stop an upload: the FILE_CANCEL to send (None if the server has no id for it yet)."""
        up = self.uploads.get(local_id)
        if up is None or up.state.over:
            return None
        up.state = State.CANCELLED
        up.buffer.clear()
        self._events.append(ev.FileFailed(local_id, up.name, "up", reason))
        return m.FileCancel(up.file_id, "") if up.file_id else None

    def offers(self, room: str | None = None) -> list[Download]:
        """Offers seen (to `room`, or every one), oldest first."""
        return [d for d in self.downloads.values() if room is None or d.offer.room == room]

    def list_files(self, request_id: int, room: str) -> None:
        self._listings[request_id] = room
        self.listings_unsent.append(m.ListFiles(request_id, room))

    def wants(self) -> Iterator[tuple[int, int, int]]:
        """(local id, offset, length) of every upload whose read-ahead the owner should refill."""
        for up in self.uploads.values():
            want = up.wants()
            if want is not None:
                yield up.local_id, want[0], want[1]

    def feed(self, local_id: int, offset: int, data: bytes) -> None:
        up = self.uploads.get(local_id)
        if up is not None:
            up.feed(offset, data)

    def events(self) -> list[ev.Event]:
        """The events reported so far (when the queue is this object's own), taken."""
        out = list(self._events)
        self._events.clear()
        return out

    @property
    def active(self) -> bool:
        """True while an upload or download is under way (the owner keeps feeding and writing)."""
        return any(not u.state.over for u in self.uploads.values()) or any(
            d.state is State.RECEIVING for d in self.downloads.values()
        )

    # ------------------------------------------------------------ the connection's side

    def new_session(self) -> None:
        """A new session: offers in flight are sent again (the answer says where to resume), and
        downloads ask again from the bytes held."""
        for up in self.uploads.values():
            if up.state in (State.OFFERING, State.SENDING):
                up.state = State.OFFERING
                up.request_id = 0
                self._offers_unsent = True
        for down in self.downloads.values():
            if down.state is State.RECEIVING:
                down.get_unsent = True
        self.listings_unsent = [m.ListFiles(i, room) for i, room in self._listings.items()]

    def unsupported(self, reason: str) -> None:
        """The server turned out not to take files: every transfer under way fails with `reason`."""
        for up in self.uploads.values():
            if not up.state.over:
                up.state = State.FAILED
                up.buffer.clear()
                self._events.append(ev.FileFailed(up.local_id, up.name, "up", reason))
        for down in self.downloads.values():
            if down.state is State.RECEIVING:
                down.state = State.FAILED
                self._events.append(ev.FileFailed(down.offer.file_id, down.offer.name, "down", reason))
        self._listings.clear()
        self.listings_unsent = []

    def requests_to_send(self, next_request_id: Iterator[int]) -> list[m.Message]:
        """Offers, FILE_GETs and FILES requests not sent on this session yet."""
        out: list[m.Message] = []
        if self._offers_unsent:
            self._offers_unsent = False
            for up in self.uploads.values():
                if up.state is State.OFFERING and not up.request_id:
                    out.append(up.offer(next(next_request_id)))
        for down in self.downloads.values():
            if down.get_unsent:
                down.get_unsent = False
                out.append(m.FileGet(down.offer.file_id, down.received))
        if self.listings_unsent:
            out.extend(self.listings_unsent)
            self.listings_unsent = []
        return out

    def chunks(self, budget: int) -> list[m.FileChunk]:
        """Up to `budget` FILE_CHUNKs, shared among the uploads under way (oldest first)."""
        out: list[m.FileChunk] = []
        for up in self.uploads.values():
            if budget <= 0:
                break
            got = up.chunks(budget)
            budget -= len(got)
            out.extend(got)
        return out

    def progress_due(self, now: float) -> None:
        """Report the progress of uploads as their chunks go (called after chunks were taken)."""
        for up in self.uploads.values():
            if up.state is State.SENDING:
                up.progress.update(up.sent, now)
                if up.progress.due(now):
                    self._progress(up.local_id, up.name, "up", up.progress)

    def owns_request(self, request_id: int) -> bool:
        return request_id in self._listings or any(
            u.request_id == request_id and u.state is State.OFFERING for u in self.uploads.values()
        )

    def on_request_done(self, msg: m.RequestDone, now: float) -> bool:
        """A REQUEST_DONE for one of ours (an offer refused before any byte, or the end of a
        FILES listing): True when it was ours."""
        if self._listings.pop(msg.request_id, None) is not None:
            return True
        for up in self.uploads.values():
            if up.request_id == msg.request_id and up.state is State.OFFERING:
                if msg.code:
                    up.state = State.FAILED
                    reason = neutralize(msg.text) or f"refused (error {msg.code})"
                    self._events.append(ev.FileFailed(up.local_id, up.name, "up", reason))
                return True
        return False

    def on_state(self, msg: m.FileState, now: float) -> None:
        """FILE_STATE: an upload's id and resume point, its storing, a checksum refusal; or a
        download refused (NO_SUCH_FILE)."""
        up = self._upload_for(msg)
        if up is None:
            down = self.downloads.get(msg.file_id)
            if down is not None and down.state is State.RECEIVING and msg.code:
                down.state = State.FAILED
                reason = neutralize(msg.text) or "the server no longer keeps this file"
                self._events.append(ev.FileFailed(msg.file_id, down.offer.name, "down", reason))
            return
        if msg.code:
            up.state = State.FAILED
            up.buffer.clear()
            if msg.code == ErrorCode.BAD_CHECKSUM:
                reason = "the file changed while it was sent (checksum mismatch): send it again"
            else:
                reason = neutralize(msg.text) or f"refused (error {msg.code})"
            self._events.append(ev.FileFailed(up.local_id, up.name, "up", reason))
            return
        up.file_id = msg.file_id
        if msg.received >= up.size and msg.text == STORED:  # the server checked the whole (21.3 step 4)
            up.state = State.STORED
            up.sent = up.size
            up.buffer.clear()
            up.progress.update(up.size, now)
            self._progress(up.local_id, up.name, "up", up.progress)
            self._events.append(ev.FileDone(up.local_id, up.name, "up", None, up.sha256.hex()))
            return
        if up.state is State.OFFERING:
            up.state = State.SENDING
            up.resume_at(msg.received, now)
        elif msg.received != up.sent:
            up.resume_at(msg.received, now)  # the server holds less (or more) than we sent: go on from there

    def _upload_for(self, msg: m.FileState) -> Upload | None:
        for up in self.uploads.values():
            if up.state.over:
                continue
            if msg.request_id and up.request_id == msg.request_id:
                return up
            if not msg.request_id and up.file_id and up.file_id == msg.file_id:
                return up
        return None

    def on_offered(self, msg: m.FileOffered, now: float) -> None:
        """FILE_OFFERED: remembered (so /files and /accept know it) and reported once per file."""
        if msg.file_id in self.downloads or len(msg.sha256) != m.SHA256_BYTES:
            return  # listed again, or no digest to check it against: never accepted
        offer = ev.FileOffered(
            msg.file_id, neutralize(msg.room) or None, neutralize(msg.to) or None, neutralize(msg.sender),
            neutralize(msg.name), msg.size, msg.sha256.hex(), neutralize(msg.mime),
            bool(msg.flags & m.FILE_FOLDER), msg.ts_ms / 1000, bool(msg.listing),
        )  # fmt: skip
        self.downloads[msg.file_id] = Download(offer, msg.sha256)
        self._events.append(offer)

    def on_data(self, msg: m.FileData, now: float) -> None:
        """FILE_DATA: the bytes that extend what we hold go to the owner (`FileChunkReceived`) and
        the running hash; a resend below that is dropped, a gap waits for the server to go on."""
        down = self.downloads.get(msg.file_id)
        if down is None or down.state is not State.RECEIVING:
            return
        end = msg.offset + len(msg.data)
        if end <= down.received or msg.offset > down.received:
            return  # a resend, or the tail of a stream a new FILE_GET replaced
        if end > down.size:
            down.state = State.FAILED
            reason = "the server sent more than the offer's size"
            self._events.append(ev.FileFailed(msg.file_id, down.offer.name, "down", reason))
            return
        data = msg.data[down.received - msg.offset :]
        down.hasher.update(data)
        self._events.append(ev.FileChunkReceived(msg.file_id, down.received, data))
        down.received = end
        down.progress.update(end, now)
        if end == down.size:
            self._finish_download(down, now)
        elif down.progress.due(now):
            self._progress(msg.file_id, down.offer.name, "down", down.progress)

    def _finish_download(self, down: Download, now: float) -> None:
        file_id, name = down.offer.file_id, down.offer.name
        self._progress(file_id, name, "down", down.progress)
        if down.hasher.digest() != down.sha256:
            down.state = State.FAILED
            reason = "the file that arrived does not match its SHA-256 (not saved)"
            self._events.append(ev.FileFailed(file_id, name, "down", reason))
            return
        down.state = State.DONE
        self._events.append(ev.FileDone(file_id, name, "down", None, down.offer.sha256))

    def _progress(self, file_id: int, name: str, direction: str, progress: Progress) -> None:
        self._events.append(
            ev.FileProgress(
                file_id, name, direction, progress.done, progress.size, progress.rate_bps, progress.eta_s
            )
        )
