"""Textual messages born on the network: one per client-core event, posted by the App's network worker.

The worker turns every `labchat.protocol.events` event into one of these and posts it to the App, which
routes it (login screen, trust prompt, room). Widgets only ever see these messages, never the socket.

Every message carries `attempt`, the number of the login attempt whose client produced it: after the
user retries a login, events still queued from the abandoned attempt are recognised and dropped.
Messages are `bubble=False` because the App forwards them down to the room screen; bubbling back up
would deliver them twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from textual.message import Message

from ..protocol import events as ev


@dataclass
class NetworkMessage(Message, bubble=False):
    """Base of every network-born message: something the client core reported."""

    attempt: int

    def __init_subclass__(cls, bubble: bool | None = False, **kwargs: Any) -> None:
        # Textual resets `bubble` to True for every subclass unless told otherwise.
        super().__init_subclass__(bubble=bubble, **kwargs)


@dataclass
class NetworkBatch(Message, bubble=False):
    """Everything the client core reported since the last batch, in order, as one message.

    At a thousand chat lines a second, one Textual message per line would queue up in front of the
    user's key presses; one batch at a time (the worker waits for `handled`) keeps typing instant.
    """

    messages: list[NetworkMessage]
    handled: asyncio.Event


@dataclass
class ConnectionStateChanged(NetworkMessage):
    """Connecting, connected (with the round-trip time), reconnecting or closed."""

    state: ev.ConnectionState
    detail: str = ""
    rtt_s: float | None = None

    def can_replace(self, message: Message) -> bool:
        # Only the latest state matters: a flapping link must not queue a backlog of repaints.
        return isinstance(message, ConnectionStateChanged) and message.attempt == self.attempt


@dataclass
class ServerKeySeen(NetworkMessage):
    """The secure channel is up; `first_contact` means the user is asked to trust the fingerprint."""

    fingerprint: str
    first_contact: bool


@dataclass
class ServerKeyChanged(NetworkMessage):
    """The server's key is not the pinned one: the login was refused before the password was sent."""

    expected: str
    actual: str


@dataclass
class LoggedIn(NetworkMessage):
    """Login accepted, the first time or after a reconnect (`resumed`)."""

    user: str
    room: str
    server_name: str
    registered: bool
    resumed: bool


@dataclass
class LoginRefused(NetworkMessage):
    """The server refused the login; `code` is an `ErrorCode`, `reason` its words."""

    code: int
    reason: str


@dataclass
class ConnectFailed(NetworkMessage):
    """The server never answered within the connect timeout."""

    reason: str


@dataclass
class StartFailed(NetworkMessage):
    """The client could not start: its UDP port is taken or not allowed (the worker reports this)."""

    reason: str


@dataclass
class ChatReceived(NetworkMessage):
    """A room message from someone (or our own, replayed from history after a reconnect)."""

    event: ev.MessageReceived


@dataclass
class OwnMessageQueued(NetworkMessage):
    """Our message is on its way: show it at once, marked pending."""

    event: ev.MessageQueued


@dataclass
class OwnMessageDelivered(NetworkMessage):
    """The server stored and relayed our message."""

    event: ev.MessageDelivered


@dataclass
class OwnMessageFailed(NetworkMessage):
    """The server refused our message for good; its text can be resent."""

    event: ev.MessageFailed


@dataclass
class PrivateReceived(NetworkMessage):
    """A private message to us."""

    event: ev.PrivateReceived


@dataclass
class UserJoined(NetworkMessage):
    """Someone came online."""

    event: ev.UserJoined


@dataclass
class UserLeft(NetworkMessage):
    """Someone went offline (quit, timed out, replaced)."""

    event: ev.UserLeft


@dataclass
class PresenceUpdated(NetworkMessage):
    """The full online list; `requested` when it answers the user's /who."""

    event: ev.PresenceUpdated


@dataclass
class ServerNotice(NetworkMessage):
    """Words from the server, or from the client core about itself."""

    event: ev.ServerNotice


@dataclass
class SessionClosed(NetworkMessage):
    """The session is over for good; nothing more will come from this attempt."""

    reason: str
    code: int = 0


def from_event(event: ev.Event, attempt: int) -> NetworkMessage | None:
    """The Textual message for a client-core event (None for an event the UI has no use for)."""
    match event:
        case ev.StateChanged():
            return ConnectionStateChanged(attempt, event.state, event.detail, event.rtt_s)
        case ev.ServerKeyTrusted():
            return ServerKeySeen(attempt, event.fingerprint, event.first_contact)
        case ev.ServerKeyChanged():
            return ServerKeyChanged(attempt, event.expected, event.actual)
        case ev.LoggedIn():
            return LoggedIn(
                attempt, event.user, event.room, event.server_name, event.registered, event.resumed
            )
        case ev.LoginRefused():
            return LoginRefused(attempt, event.code, event.reason)
        case ev.ConnectFailed():
            return ConnectFailed(attempt, event.reason)
        case ev.MessageReceived():
            return ChatReceived(attempt, event)
        case ev.MessageQueued():
            return OwnMessageQueued(attempt, event)
        case ev.MessageDelivered():
            return OwnMessageDelivered(attempt, event)
        case ev.MessageFailed():
            return OwnMessageFailed(attempt, event)
        case ev.PrivateReceived():
            return PrivateReceived(attempt, event)
        case ev.UserJoined():
            return UserJoined(attempt, event)
        case ev.UserLeft():
            return UserLeft(attempt, event)
        case ev.PresenceUpdated():
            return PresenceUpdated(attempt, event)
        case ev.ServerNotice():
            return ServerNotice(attempt, event)
        case ev.Closed():
            return SessionClosed(attempt, event.reason, event.code)
    return None
