"""Every NATS subject, stream and KV bucket labchat uses, in one place.

Room and user names may hold characters NATS subjects cannot (spaces, dots, `*`, `>`), and are
case-insensitive (`messages.name_key`): a subject token is the hex of the UTF-8 of the name's key, so
'#Lab' and '#lab' are one stream and any name is a valid token. Stream names allow the same tokens.
"""

from __future__ import annotations

from ...protocol.messages import name_key

#: Prefix of everything labchat puts in NATS, so a NATS cluster can serve other tenants beside it.
PREFIX = "labchat"

#: KV buckets (section "What is where" of docs/cluster.md).
PRESENCE_BUCKET = "labchat_presence"  # one key per online user: which relay holds the session
ACCOUNTS_BUCKET = "labchat_accounts"  # one key per account: salt, digest, scrypt parameters, admin
RELAYS_BUCKET = "labchat_relays"  # one key per running relay: its address for clients (failover)
SETTINGS_BUCKET = "labchat_settings"  # cluster-wide things: the shared ticket key, room records


def token(name: str) -> str:
    """A NATS-safe subject token for a room or user name (case-insensitive, like the names)."""
    return name_key(name).encode("utf-8").hex()


def name_of_token(tok: str) -> str:
    """The name key a token stands for (for logs and replays)."""
    return bytes.fromhex(tok).decode("utf-8")


def room_stream(room: str) -> str:
    """One stream per room: its stream sequence is the room's `seq` (docs/protocol.md 18)."""
    return f"LABCHAT_ROOM_{token(room)}"


def room_subject(room: str) -> str:
    return f"{PREFIX}.room.{token(room)}"


def presence_subject(room: str) -> str:
    """Joins and leaves of one room, for the other relays' PRESENCE lists."""
    return f"{PREFIX}.presence.{token(room)}"


def user_subject(user: str) -> str:
    """Private messages and notices for one user, delivered by whichever relay holds them."""
    return f"{PREFIX}.user.{token(user)}"


def relay_subject(relay_id: str) -> str:
    """Orders for one relay (for example: a session of yours was replaced on another relay)."""
    return f"{PREFIX}.relay.{relay_id}"


def msg_id_header(user: str, msg_id: int) -> str:
    """`Nats-Msg-Id` of a chat line: the same line resent (after a failover too) is stored once."""
    return f"{token(user)}:{msg_id}"


#: Private messages held for users online nowhere (cluster/privates.py): one subject per user.
HELD_STREAM = "LABCHAT_HELD"
HELD_SUBJECTS = f"{PREFIX}.held.*"


def held_subject(user: str) -> str:
    """Private messages waiting for `user`'s next login, on whichever relay that is."""
    return f"{PREFIX}.held.{token(user)}"

def import_msg_id(room: str, seq: int) -> str:
    """`Nats-Msg-Id` of a message `labchat-admin import` copies into a room stream: a re-run within
    the stream's duplicate window is stored once (and import checks the stream beyond it)."""
    return f"import:{token(room)}:{seq}"


#: A header on the filler messages import publishes (and deletes at once) to keep a room's seqs.
GAP_HEADER = "Labchat-Gap"
