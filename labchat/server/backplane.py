"""Where room order and durability come from.

A single server numbers a room's messages itself and makes them durable with its own SQLite commit
(relay.py, `_commit_pending`). A relay of a cluster does neither: it hands each room message to the
cluster, which numbers it (the room stream's sequence is the room `seq`) and stores it on a quorum of
nodes; every relay then reads each room stream in order and stores what it reads in its own SQLite,
a local replica from which history, search and catch-up work unchanged.

`ClusterBackplane` is the relay's sans-I/O side of that exchange. The relay puts messages in its
`outbox` and names the rooms it opens; the asyncio bridge (cluster/bridge.py) takes both after each
flush, publishes, follows the streams, and answers through the relay's `room_message_stored`,
`room_message_published` and `room_message_refused`. Nothing here touches a socket or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..protocol import messages as m

#: How long a refused sender waits before sending again (REJECTED's `retry_after_ms`, 22.6).
RETRY_AFTER_MS = 1000


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A room message for the cluster to number and store (its `seq` comes back from the cluster)."""

    room: str
    ts_ms: int
    user: str
    text: str
    flags: int
    msg_id: int


@dataclass(slots=True)
class ClusterBackplane:
    """What the relay and the bridge exchange. Give one to `Relay(..., backplane=...)`: cluster mode."""

    #: Messages to publish, in arrival order; the bridge takes them after each flush.
    outbox: list[Outgoing] = field(default_factory=list)
    #: Rooms the relay opened since the bridge last looked: their streams must be followed.
    rooms_to_follow: list[str] = field(default_factory=list)
    #: False while the connection to the cluster is lost: new messages are refused at once.
    reachable: bool = True
    #: False while the relay starts and its replica catches up with the room streams: logins wait
    #: in the login queue (LOGIN_QUEUED, 17.3), so that nobody is shown a room whose history is
    #: still arriving as a flood of live lines.
    ready: bool = True
    #: The logins waiting for `ready`, in arrival order: (session id, its LOGIN).
    deferred: list[tuple[bytes, m.Login]] = field(default_factory=list)
    #: (user name key, msg_id) -> the session waiting for its ACCEPTED.
    awaiting: dict[tuple[str, int], bytes] = field(default_factory=dict)
    #: session id -> until when (s) its new messages are refused: after one refusal the rest of what
    #: it sent meanwhile must not overtake the refused line (the client resends them all, in order).
    refusing: dict[bytes, float] = field(default_factory=dict)
    #: Sessions told in words that messages cannot be stored now: told once per outage, not per line.
    told: set[bytes] = field(default_factory=set)
    #: Messages refused because the cluster could not store them (a counter for logs and tests).
    refused: int = 0

    def take_outbox(self) -> list[Outgoing]:
        out, self.outbox = self.outbox, []
        return out

    def take_rooms(self) -> list[str]:
        rooms, self.rooms_to_follow = self.rooms_to_follow, []
        return rooms
