"""Events a client connection reports to its owner (line mode, the Textual app, the benchmark).

Past-tense facts, one slotted dataclass each, never changed once made (not `frozen`, for the reason
given in messages.py: one is built per message received). Times are Unix seconds (float) as the server
stamped them. The UI layers turn these into printed lines or Textual messages; nothing here knows
how they look.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ConnectionState(Enum):
    """What the user should be told about the link to the server."""

    #: Handshake and login in progress for the first time.
    CONNECTING = "connecting"
    #: Logged in and the server answers.
    CONNECTED = "connected"
    #: Logged in before, but the server has gone quiet or away: retrying by itself.
    RECONNECTING = "reconnecting"
    #: Over for good (quit, refused login, replaced, key mismatch). Nothing more will happen.
    CLOSED = "closed"


@dataclass(slots=True)
class Event:
    """Base of client events."""


@dataclass(slots=True)
class StateChanged(Event):
    """The connection state changed; `rtt_s` is the smoothed round-trip time when connected."""

    state: ConnectionState
    detail: str = ""
    rtt_s: float | None = None


@dataclass(slots=True)
class ServerKeyTrusted(Event):
    """The secure channel is up. `first_contact`: the key was not known before and is now pinned."""

    fingerprint: str
    first_contact: bool


@dataclass(slots=True)
class ServerKeyChanged(Event):
    """The server's key is not the pinned one: we refused to log in. Shown with both fingerprints."""

    expected: str
    actual: str


@dataclass(slots=True)
class LoggedIn(Event):
    """Login accepted (first time or after a reconnect)."""

    user: str
    room: str
    server_name: str
    registered: bool
    resumed: bool
    #: The server has rooms and roles (docs/protocol.md 18.1): JOIN, PART, moderation work.
    rooms: bool = False
    #: Admitted with the class password, not an account (18.11).
    guest: bool = False


@dataclass(slots=True)
class LoginRefused(Event):
    """Login refused; `code` is an `ErrorCode`, `reason` is for the user. The connection is closed."""

    code: int
    reason: str


@dataclass(slots=True)
class LoginQueued(Event):
    """The server is busy checking other logins: `position` are ahead of ours, and it expects to
    start ours in about `eta_s`. The client keeps waiting as long as it hears this."""

    position: int
    eta_s: float = 0.0


@dataclass(slots=True)
class RelayMoved(Event):
    """Logged in again on another relay of the same server than the last login's (docs/protocol.md
    22.3): its old relay stopped answering. Nothing was lost: the login resumed by `seq`."""

    host: str
    port: int

    @property
    def label(self) -> str:
        """`HOST:PORT` as a user types it (`[v6]:PORT` for an IPv6 address)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"  # 22.3


@dataclass(slots=True)
class LoginRetrying(Event):
    """A re-connecting client's login was refused for now (throttled, server busy): it logs in
    again by itself in `retry_in_s`. `code` is the `ErrorCode`, `reason` the server's words."""

    code: int
    reason: str
    retry_in_s: float


@dataclass(slots=True)
class ConnectFailed(Event):
    """The server never answered (or the port could not be used). The connection is closed."""

    reason: str


@dataclass(slots=True)
class MessageReceived(Event):
    """A room message from someone else (or from us, seen again in history after a reconnect)."""

    room: str
    seq: int
    ts: float
    user: str
    text: str
    action: bool = False
    history: bool = False
    own: bool = False


@dataclass(slots=True)
class MessageQueued(Event):
    """Our message is on its way: show it at once, marked pending. `local_id` ties later events to it."""

    local_id: int
    room: str
    text: str
    action: bool = False
    to: str | None = None


@dataclass(slots=True)
class MessageDelivered(Event):
    """The server stored and relayed our message `local_id`, as room `seq` (0 for private messages)."""

    local_id: int
    room: str
    seq: int
    ts: float
    text: str
    action: bool = False
    to: str | None = None


@dataclass(slots=True)
class MessageFailed(Event):
    """The server refused our message `local_id` for good; its text is kept so it can be resent."""

    local_id: int
    reason: str
    text: str
    to: str | None = None
    #: The room it was for ("" for a private message).
    room: str = ""
    #: The server's ErrorCode (MUTED, MODERATED, ...), 0 when the client itself gave up.
    code: int = 0


@dataclass(slots=True)
class PrivateReceived(Event):
    """A private message to us. `held`: the server kept it while we were offline; `ts` is when it
    was sent."""

    sender: str
    to: str
    ts: float
    text: str
    action: bool = False
    held: bool = False
    #: A member's room line in quiet mode, for the operators only (FLAG_TO_OPS, 20.5): `to` is the
    #: room it was said in.
    to_ops: bool = False


@dataclass(slots=True)
class UserJoined(Event):
    room: str
    user: str
    ts: float
    #: Where the newcomer sits (20.2), from a classroom server; "" unknown.
    seat: str = ""


@dataclass(slots=True)
class UserLeft(Event):
    room: str
    user: str
    ts: float
    reason: str


@dataclass(slots=True)
class PresenceUpdated(Event):
    """The full online list of `room` (on login, after a reconnect, and in answer to /who).
    `away` maps each away user (as in `users`) to their reason ("" if they gave none)."""

    room: str
    users: tuple[str, ...]
    requested: bool = False
    away: dict[str, str] = field(default_factory=dict)
    #: MEMBER_* bits (messages.py) of the users that have any: operators, voiced, muted, guests,
    #: admins (18.7). Empty from a server without rooms.
    modes: dict[str, int] = field(default_factory=dict)
    #: Each user's seat (host name or `--seat`, 20.2) for those that have one known. Empty from a
    #: server without the classroom.
    seats: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class UserAway(Event):
    """`user` went away (`away`, for `reason`) or came back, at `ts`; ourselves included, which
    confirms our own /away or /back."""

    room: str
    user: str
    away: bool
    reason: str
    ts: float


@dataclass(slots=True)
class ServerNotice(Event):
    """Words from the server itself, or from the client core about itself (`local`)."""

    text: str
    code: int = 0
    local: bool = False


@dataclass(slots=True)
class Closed(Event):
    """The session is over; `reason` for the user. The last event a connection emits."""

    reason: str
    code: int = 0


@dataclass(slots=True)
class HistoryPage(Event):
    """Older room messages fetched on request (`fetch_history`), oldest first.

    Not live and not part of the exactly-once stream: showing them changes no `last_seq`, and they
    may overlap what was already shown. `more` says older ones remain; `error` is set (and the page
    empty) when the server could not answer.
    """

    room: str
    messages: tuple[MessageReceived, ...]
    more: bool
    before_seq: int = 0
    error: str = ""
    #: The `fetch_history` request this answers.
    request_id: int = 0


@dataclass(slots=True)
class SearchHit:
    """One stored message matching a search: where it is, who wrote it, the text around the match."""

    room: str
    seq: int
    ts: float
    user: str
    snippet: str
    action: bool = False


@dataclass(slots=True)
class SearchResults(Event):
    """The answer to `search(query)`: hits newest first; `more` when more matched than were sent."""

    query: str
    hits: tuple[SearchHit, ...]
    more: bool = False
    error: str = ""
    #: The room searched.
    room: str = ""


# ---------------------------------------------------------------- rooms and roles (docs/protocol.md 18)


@dataclass(slots=True)
class RoomState(Event):
    """A room we are in, as it is now: on joining it (`joined` True: it is new to us) and after each
    change of its topic, its modes, or our role or mute in it. `modes` are ROOM_* bits, `you` our
    MEMBER_* bits; `muted_until` is None when not muted, `math.inf` for a mute until lifted."""

    room: str
    topic: str
    modes: int
    you: int
    muted_until: float | None
    members: int
    joined: bool = False
    #: When quiet mode ends (20.5), None when the room is not quiet.
    quiet_until: float | None = None


@dataclass(slots=True)
class RoomLeft(Event):
    """We are no longer in `room`: we parted (`code` 0), or `by` kicked (KICKED) or banned (BANNED)
    us; `until` is a ban's end (None: no ban, `math.inf`: until lifted)."""

    room: str
    code: int = 0
    by: str = ""
    reason: str = ""
    until: float | None = None


@dataclass(slots=True)
class RoomInfo:
    """One room in a `RoomList`."""

    room: str
    online: int
    topic: str
    modes: int


@dataclass(slots=True)
class RoomList(Event):
    """The answer to /list: the rooms we may see, by name; `more` when the server had more."""

    rooms: tuple[RoomInfo, ...]
    more: bool = False
    error: str = ""
    #: The `list_rooms` request this answers.
    request_id: int = 0


@dataclass(slots=True)
class RoomEvent(Event):
    """News of a room (18.10): `actor` did `action` (messages.Action) to `target`. `text` is the
    server's English sentence; `value` a setting's new value or a sanction's reason."""

    room: str
    ts: float
    action: int
    actor: str
    target: str
    minutes: int
    value: str
    text: str


@dataclass(slots=True)
class Announcement(Event):
    """`room`'s pinned announcement (empty `text`: cleared). Whoever shows it to the user then calls
    the client's `announcement_seen(room, announcement_id)`."""

    room: str
    announcement_id: int
    by: str
    ts: float
    text: str


@dataclass(slots=True)
class AnnouncementTally(Event):
    """For operators: `seen` of `total` members have shown the announcement; `not_yet` names some
    of those who have not."""

    room: str
    announcement_id: int
    seen: int
    total: int
    not_yet: tuple[str, ...]


@dataclass(slots=True)
class RequestFailed(Event):
    """A room request was refused: `request` is "join", "part", "list", "set" or "moderate", or one
    of the classroom's (20): "hand", "queue", "poll", "vote";
    `code` the server's ErrorCode, `text` its words for the user."""

    request: str
    room: str
    code: int
    text: str
    #: The id the request was given (join(), part(), ...), 0 when refused before it had one.
    request_id: int = 0


@dataclass(slots=True)
class CurrentRoomChanged(Event):
    """The connection moved its current room (where lines typed without a room go) by itself:
    `joined` True when a JOIN of ours succeeded (the new room becomes current, as in every chat),
    False when the current room was left and `room` is the one talked to now ("" when none is left).
    A switch the owner asked for (`set_current_room`) is not reported."""

    room: str
    joined: bool = False


# ---- the classroom (20)


@dataclass(slots=True)
class QueueItem:
    """One entry of a room's help queue: `user` at `seat` asked `question` at `since` (Unix
    seconds); `taken_by` the operator coming to help ("" while waiting)."""

    user: str
    seat: str
    question: str
    since: float
    taken_by: str = ""


@dataclass(slots=True)
class QueueUpdated(Event):
    """For operators: `room`'s whole help queue, in order (empty: nobody waiting). Sent whenever it
    changes, and on joining or logging in."""

    room: str
    entries: tuple[QueueItem, ...]


@dataclass(slots=True)
class PollShown(Event):
    """A poll of `room` as we may see it (20.4): on opening, on closing, and for operators as votes
    arrive. `counts` (one per option) and `voters` are empty/0 for a member while it is open;
    `your_choice` is our own vote (1-based, 0: none); `ballots` (choice, voter) only for operators
    of a poll that is not anonymous."""

    room: str
    poll_id: int
    by: str
    question: str
    options: tuple[str, ...]
    anonymous: bool
    closed: bool
    counts: tuple[int, ...]
    voters: int
    your_choice: int
    ballots: tuple[tuple[int, str], ...]


# ---- files (21)


@dataclass(slots=True)
class FileOffered(Event):
    """A file offered to a room (`room`) or to us alone (`to`): nothing is sent until the user
    accepts it (`ChatClient.accept_file(file_id)`). `sha256` in hex; `listing` True when it was kept
    for us (a late join, FILES, an offer made while we were offline) rather than offered just now.
    Every text field is as the sender wrote it, made printable: never a path to trust (21.5)."""

    file_id: int
    room: str | None
    to: str | None
    sender: str
    name: str
    size: int
    sha256: str
    mime: str
    folder: bool
    ts: float
    listing: bool = False


@dataclass(slots=True)
class FileProgress(Event):
    """How far a transfer is: `direction` "up" (ours; `file_id` is the local id `send_file`
    returned) or "down". At most ~4 a second per transfer, and one at the end."""

    file_id: int
    name: str
    direction: str
    done: int
    size: int
    rate_bps: float
    eta_s: float | None


@dataclass(slots=True)
class FileDone(Event):
    """A transfer finished: an upload stored by the server, or a download verified (SHA-256) and
    saved at `path` (None from the connection itself: the client core saves it and fills it in)."""

    file_id: int
    name: str
    direction: str
    path: str | None
    sha256: str


@dataclass(slots=True)
class FileFailed(Event):
    """A transfer ended without the file: refused (too large, quota, name), cancelled, a checksum
    mismatch, a full disk. `reason` is one line for the user."""

    file_id: int
    name: str
    direction: str
    reason: str


@dataclass(slots=True)
class FileChunkReceived(Event):
    """Bytes of download `file_id` at `offset`, in order, each once: for the owner that writes the
    file (the client core), which does not pass this event on to the UI."""

    file_id: int
    offset: int
    data: bytes = field(repr=False)
