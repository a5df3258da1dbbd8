"""`labchat-admin --cluster URLS import FILE`: a single server's export (backup.py) into the cluster.

What goes where: each room's history into its room stream, accounts into the ACCOUNTS bucket (the
format codec.AccountValue, shared with the relays), roles, mutes, bans and invitations into the
SETTINGS bucket as the moderation actions every relay carries out (moderation.py: a relay that starts
reads the latest action per room, user and kind). Room records and room lists are kept by each
relay's own database: `labchat-admin --db RELAY.db import FILE` loads them there (see
docs/cluster.md, "Migrating a single server"). What the cluster has already (an account, an action)
is left as it is: it is newer than the file.

Seqs are kept. A room stream numbers its messages itself, from 1, one after the other; a single
server's history may start later (pruned) and may have holes. So before the first message the
stream is moved on to the first seq (a purge up to that sequence, which on an empty stream only
sets where numbering starts), and a hole in a stream that already has messages is filled by filler
messages (header names.GAP_HEADER, an empty payload that no relay decodes) deleted at once: a
deleted message leaves its sequence used. The room's last seq ever handed out is reached the same
way, so a new message never reuses a number. Clients' cursors (`resume` by seq) therefore stay valid
across the migration.

Every message is published with `Nats-Msg-Id` = names.import_msg_id(room, seq) and
`Nats-Expected-Last-Sequence` = seq - 1: JetStream stores it only as the next message of the room, so
nothing can slip in between, and a lost PubAck retried is not stored twice. A re-run (after an
interruption, or by mistake) first reads how far the stream got and checks that what is there came
from this file (the message ids at both ends of the part already present), then publishes only the
rest: nothing is imported twice, beyond JetStream's duplicate window too. A stream holding history
that did not come from this file is refused in one line: two histories are never mixed.

The file is read twice (once to check it whole, once to import), a line at a time: a bad file is
refused before anything is written, and a big history never sits in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import nats.js.errors
from nats.js.kv import KeyValue

from ...i18n import _
from ...protocol import messages as m
from ..backup import (
    AccountRow,
    InviteRow,
    MessageRow,
    RoleRow,
    RoomRow,
    SanctionRow,
    check_file,
    lines_of,
    open_export,
    read_export,
)
from . import names
from .codec import AccountValue, RoomRecord, encode_account, encode_room_message
from .connection import PUBLISH_ATTEMPT_S, TRANSIENT, ClusterConnection, ClusterUnavailable
from .exchange import ModerationRecord
from .moderation import encode_moderation, moderation_key

#: How long one message (or one account) may take to be stored, retries across a node's death included.
STORE_DEADLINE_S = 30.0
#: JetStream's error code for "wrong last sequence" (Nats-Expected-Last-Sequence not met).
_WRONG_LAST_SEQUENCE = 10071


class ClusterImportError(Exception):
    """The cluster holds something that does not fit the file; the message says what (one line)."""


@dataclass
class ClusterImport:
    """What an import did: new things written, and things found already there (a re-run)."""

    accounts_created: int = 0
    accounts_present: int = 0
    moderation_created: int = 0  # roles, mutes, bans, invitations
    moderation_present: int = 0
    messages_published: int = 0
    messages_present: int = 0
    rooms: int = 0
    elapsed_s: float = 0.0


class _Room:
    """One room's stream while its messages are imported."""

    def __init__(self, name: str, last: int, empty: bool) -> None:
        self.name = name
        self.stream = names.room_stream(name)
        self.subject = names.room_subject(name)
        self.last = last  # the stream's last sequence: the next message must be last + 1
        self.empty = empty  # no message in the stream (numbering may still start anywhere)
        self.checked_first = False
        self.unchecked_present: MessageRow | None = None  # last message found present, to check


async def import_into_cluster(
    conn: ClusterConnection, path: Path, progress: Callable[[str], None] = lambda line: None
) -> ClusterImport:
    """Import the export file at `path` into the cluster `conn` is connected to.

    Raises:
        ExportFileError: the file is bad (nothing was written).
        StoreError: the file cannot be read.
        ClusterImportError: a room stream holds history that is not this file's.
        ClusterUnavailable: NATS did not store a message in time (re-run to continue).
    """
    started = time.monotonic()
    counts = check_file(path)
    progress(_("checked {path}: {accounts} accounts, {rooms} rooms, {messages} messages").format(
        path=path, accounts=counts.account, rooms=counts.room, messages=counts.message))
    result = ClusterImport()
    last_seq: dict[str, int] = {}
    accounts: KeyValue | None = None
    settings: KeyValue | None = None
    now_ms = int(time.time() * 1000)
    room: _Room | None = None
    with open_export(path) as stream:
        for record in read_export(lines_of(stream)):
            if isinstance(record, AccountRow):
                if accounts is None:
                    accounts = await conn.bucket(names.ACCOUNTS_BUCKET)
                await _import_account(accounts, record, result)
            elif isinstance(record, RoomRow):
                last_seq[record.name] = record.last_seq
            elif isinstance(record, RoleRow | SanctionRow | InviteRow):
                action = _moderation(record, now_ms)
                if action is not None:
                    if settings is None:
                        settings = await conn.bucket(names.SETTINGS_BUCKET)
                    await _import_moderation(settings, action, result)
            elif isinstance(record, MessageRow):
                if room is None or room.name != record.room:
                    if room is not None:
                        await _finish_room(conn, room, last_seq.pop(room.name), result)
                    room = await _open_room(conn, record.room)
                await _import_message(conn, room, record, result)
                done = result.messages_published + result.messages_present
                if done % 10_000 == 0:
                    progress(_("{done} of {total} messages").format(done=done, total=counts.message))
    if room is not None:
        await _finish_room(conn, room, last_seq.pop(room.name), result)
    for name, seq in last_seq.items():  # rooms whose history was all pruned: their numbering only
        if seq:
            await _finish_room(conn, await _open_room(conn, name), seq, result)
    result.elapsed_s = time.monotonic() - started
    return result


async def _import_account(bucket: KeyValue, row: AccountRow, result: ClusterImport) -> None:
    value = encode_account(AccountValue(row.name, row.salt, row.digest, row.n, row.r, row.p, row.admin,
                                        row.created_ms))
    deadline = time.monotonic() + STORE_DEADLINE_S
    while True:
        try:
            await bucket.create(names.token(row.name), value)
            result.accounts_created += 1
            return
        except nats.js.errors.KeyWrongLastSequenceError:
            result.accounts_present += 1  # the cluster's account wins: a re-run, or made there since
            return
        except TRANSIENT:
            if time.monotonic() > deadline:
                raise ClusterUnavailable(_("NATS did not store account {name} in time").format(
                    name=row.name)) from None
            await asyncio.sleep(0.1)


#: The `relay` of the moderation actions import writes (no relay skips them as its own).
IMPORT_RELAY = "labchat-admin-import"


def _moderation(record: RoleRow | SanctionRow | InviteRow, now_ms: int) -> ModerationRecord | None:
    """The moderation action that gives a relay this role, sanction or invitation (None: a sanction
    that has ended, or a name no action can carry)."""
    target = record.account  # a name key: lowercase, a valid name for the names an account may have
    if not m.is_valid_name(target):
        return None
    if isinstance(record, RoleRow):
        action = m.Action.OP if record.role == "op" else m.Action.VOICE
        return ModerationRecord(IMPORT_RELAY, record.room, "", int(action), target, 0, "", now_ms)
    if isinstance(record, InviteRow):
        return ModerationRecord(IMPORT_RELAY, record.room, "", int(m.Action.INVITE), target, 0, "", now_ms)
    action = m.Action.MUTE if record.kind == "mute" else m.Action.BAN
    if record.until_ms is None:  # until lifted: 0 minutes
        return ModerationRecord(IMPORT_RELAY, record.room, record.by, int(action), target, 0,
                                record.reason, now_ms)
    if record.until_ms <= now_ms:
        return None
    # The action's end is its time plus its minutes: pick the time so that the end is the same.
    minutes = -(-(record.until_ms - now_ms) // 60_000)
    return ModerationRecord(IMPORT_RELAY, record.room, record.by, int(action), target, minutes, record.reason,
                            record.until_ms - minutes * 60_000)


async def _import_moderation(bucket: KeyValue, action: ModerationRecord, result: ClusterImport) -> None:
    deadline = time.monotonic() + STORE_DEADLINE_S
    while True:
        try:
            await bucket.create(moderation_key(action), encode_moderation(action))
            result.moderation_created += 1
            return
        except nats.js.errors.KeyWrongLastSequenceError:
            result.moderation_present += 1  # an action made in the cluster since: it is newer
            return
        except TRANSIENT:
            if time.monotonic() > deadline:
                raise ClusterUnavailable(_("NATS did not store the moderation of room {room} in time").format(
                    room=action.room)) from None
            await asyncio.sleep(0.1)


async def _open_room(conn: ClusterConnection, name: str) -> _Room:
    deadline = time.monotonic() + STORE_DEADLINE_S
    while True:
        try:
            await conn.ensure_room_stream(name)
            info = await conn.js.stream_info(names.room_stream(name))
            return _Room(name, info.state.last_seq, info.state.messages == 0)
        except TRANSIENT:
            if time.monotonic() > deadline:
                raise ClusterUnavailable(_("NATS did not answer for room {room} in time").format(
                    room=name)) from None
            await asyncio.sleep(0.1)


async def _import_message(
    conn: ClusterConnection, room: _Room, msg: MessageRow, result: ClusterImport
) -> None:
    if msg.seq <= room.last:  # there already: from an earlier run of this import, or refused below
        if not room.checked_first:
            await _check_present(conn, room, msg)
            room.checked_first = True
        else:
            room.unchecked_present = msg
        result.messages_present += 1
        return
    if room.unchecked_present is not None:
        await _check_present(conn, room, room.unchecked_present)
        room.unchecked_present = None
    await _advance(conn, room, msg.seq)
    payload = encode_room_message(RoomRecord(msg.ts_ms, msg.user, msg.text, msg.flags, msg.msg_id))
    await _publish(conn, room, payload, {"Nats-Msg-Id": names.import_msg_id(room.name, msg.seq)}, msg.seq)
    result.messages_published += 1


async def _finish_room(conn: ClusterConnection, room: _Room, last_seq: int, result: ClusterImport) -> None:
    """After a room's last message: check the end of what was there, and move the numbering on to
    the room's last seq ever handed out."""
    if room.unchecked_present is not None:
        await _check_present(conn, room, room.unchecked_present)
        room.unchecked_present = None
    if last_seq > room.last:
        await _advance(conn, room, last_seq + 1)
    result.rooms += 1


async def _check_present(conn: ClusterConnection, room: _Room, msg: MessageRow) -> None:
    try:
        found = await conn.js.get_msg(room.stream, msg.seq)
        msg_id = (found.headers or {}).get("Nats-Msg-Id")
    except nats.js.errors.NotFoundError:
        msg_id = None
    if msg_id != names.import_msg_id(room.name, msg.seq):
        raise ClusterImportError(
            _("room {room} already has messages in the cluster that did not come from this file (seq {seq}):"
              " import does not mix two histories").format(room=room.name, seq=msg.seq))


async def _advance(conn: ClusterConnection, room: _Room, next_seq: int) -> None:
    """Make `next_seq` the sequence the room's next message gets (keeps the file's numbering)."""
    if next_seq <= room.last + 1:
        return
    if room.empty:
        # On a stream without messages a purge up to a sequence only sets where numbering goes on.
        await _retry(lambda: conn.js.purge_stream(room.stream, seq=next_seq), room.name)
        room.last = next_seq - 1
        return
    while room.last + 1 < next_seq:  # a hole in the history: fillers, deleted at once
        seq = room.last + 1
        await _publish(conn, room, b"", {"Nats-Msg-Id": names.import_msg_id(room.name, seq) + ":gap",
                                         names.GAP_HEADER: "1"}, seq)
        await _retry(lambda: conn.js.delete_msg(room.stream, seq), room.name)  # noqa: B023 (awaited at once)


async def _publish(
    conn: ClusterConnection, room: _Room, payload: bytes, headers: dict[str, str], seq: int
) -> None:
    """Store one message at exactly `seq` (retried until STORE_DEADLINE_S)."""
    headers = {**headers, "Nats-Expected-Last-Sequence": str(seq - 1)}
    deadline = time.monotonic() + STORE_DEADLINE_S
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ClusterUnavailable(_("NATS did not store seq {seq} of room {room} in time").format(
                seq=seq, room=room.name))
        try:
            ack = await conn.js.publish(room.subject, payload, timeout=min(PUBLISH_ATTEMPT_S, left),
                                        headers=headers)
        except TRANSIENT:
            await asyncio.sleep(0.1)
            continue
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != _WRONG_LAST_SEQUENCE:
                raise ClusterImportError(_("room {room}: NATS refused seq {seq}: {reason}").format(
                    room=room.name, seq=seq, reason=exc.description)) from None
            # Stored by an attempt whose PubAck was lost (then the id is ours), or someone else wrote.
            await _check_stored(conn, room, headers["Nats-Msg-Id"], seq)
            ack_seq = seq
        else:
            ack_seq = ack.seq
        if ack_seq != seq:
            raise ClusterImportError(_("room {room}: NATS stored seq {seq} as {got}").format(
                room=room.name, seq=seq, got=ack_seq))
        room.last, room.empty = seq, False
        return


async def _check_stored(conn: ClusterConnection, room: _Room, msg_id: str, seq: int) -> None:
    try:
        found = await conn.js.get_msg(room.stream, seq)
        ours = (found.headers or {}).get("Nats-Msg-Id") == msg_id
    except nats.js.errors.NotFoundError:
        ours = False
    if not ours:
        raise ClusterImportError(
            _("room {room}: another writer added messages during the import (at seq {seq}): stop the relays"
              " and run the import again").format(room=room.name, seq=seq))


async def _retry(call: Callable[[], Awaitable[object]], room: str) -> None:
    deadline = time.monotonic() + STORE_DEADLINE_S
    while True:
        try:
            await call()
            return
        except TRANSIENT:
            if time.monotonic() > deadline:
                raise ClusterUnavailable(_("NATS did not answer for room {room} in time").format(
                    room=room)) from None
            await asyncio.sleep(0.1)

