"""The one Textual message born on the network: a client-core event, tagged with its login attempt.

The App's network worker takes each `labchat.protocol.events` event and posts it, unchanged, inside a
`CoreEvent` (in batches, see `NetworkBatch`). The App routes it (login screen, trust prompt) and hands
it to the room screen, which dispatches on the event's type with `match`. One name per concept from
the wire to the screen: a private message is `PrivateReceived` in the core and in the UI alike.

Every message carries `attempt`, the number of the login attempt whose client produced it: after the
user retries a login, events still queued from the abandoned attempt are recognised and dropped.
Messages are `bubble=False` because the App forwards them down to the room screen; bubbling back up
would deliver them twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from textual.message import Message

from ..protocol import events as ev


@dataclass(slots=True)
class StartFailed(ev.Event):
    """The client could not start: its UDP port is taken or not allowed (the worker reports this,
    not the core, which never got going)."""

    reason: str


@dataclass
class CoreEvent(Message, bubble=False):
    """Something the client core reported (or `StartFailed`), for login attempt `attempt`."""

    attempt: int
    event: ev.Event


@dataclass
class NetworkBatch(Message, bubble=False):
    """Everything the client core reported since the last batch, in order, as one message.

    At a thousand chat lines a second, one Textual message per line would queue up in front of the
    user's key presses; one batch at a time (the worker waits for `handled`) keeps typing instant.
    """

    events: list[CoreEvent]
    handled: asyncio.Event
