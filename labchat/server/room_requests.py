"""The relay's handlers for rooms and roles (docs/protocol.md section 18): JOIN, PART, LIST, ROOM_SET,
MODERATE and ANNOUNCEMENT_SEEN, the news they make (ROOM_EVENT, or NOTICE for version-1 sessions),
the read tally of announcements, and the timers that end mutes and bans.

Part of `Relay` (relay.py), kept apart so that the session and fan-out core stays readable; it works
on the relay's state, which it reaches as `self.relay`. Who may do what is not decided here but in
room.py's table (`may`); this module applies the answers.
"""

from __future__ import annotations

import heapq
import logging
from typing import TYPE_CHECKING

from ..i18n import _
from ..protocol import messages as m
from ..protocol.errors import DecodeError, ErrorCode
from ..protocol.text import truncate_utf8
from ..protocol.wire import encode_message
from .cluster.exchange import ModerationRecord, RoomNews, RoomShare
from .formatting import _escape
from .room import SWITCH_BITS, Act, Role, Room, may
from .store import RoomRecord, SanctionRecord

if TYPE_CHECKING:
    from .relay import Relay, Session

log = logging.getLogger("labchat.server.relay")

#: Rooms one server holds at most (18.13): a JOIN may create a room, so their number is bounded.
MAX_SERVER_ROOMS = 1000
#: ROOM_INFO entries answering one LIST.
MAX_ROOM_INFOS = 500

_SETTING_WORDS = {
    m.Setting.TOPIC: "set the topic",
    m.Setting.KEY: "set the key",
    m.Setting.MODERATED: "turn moderation on or off",
    m.Setting.PRIVATE: "make the room private or public",
    m.Setting.ANNOUNCEMENT: "set the announcement",
    m.Setting.TOPIC_LOCK: "lock or unlock the topic",
}
_ACTION_WORDS = {
    m.Action.OP: "op", m.Action.DEOP: "deop", m.Action.VOICE: "voice", m.Action.DEVOICE: "devoice",
    m.Action.KICK: "kick", m.Action.MUTE: "mute", m.Action.UNMUTE: "unmute", m.Action.BAN: "ban",
    m.Action.UNBAN: "unban", m.Action.INVITE: "invite",
}  # fmt: skip
_SANCTIONING = frozenset({m.Action.KICK, m.Action.MUTE, m.Action.BAN})


def describe(action: int, actor: str, target: str, minutes: int, value: str) -> str:
    """ROOM_EVENT `text`: the server's English sentence for a piece of room news (18.10)."""
    a = m.Action(action)
    because = f": {value}" if value else ""
    length = f" for {minutes} min" if minutes else ""
    lifted = "" if minutes else " (until lifted)"
    sentences = {
        m.Action.OP: f"{actor} gave {target} operator",
        m.Action.DEOP: f"{actor} took operator from {target}",
        m.Action.VOICE: f"{actor} gave {target} voice",
        m.Action.DEVOICE: f"{actor} took voice from {target}",
        m.Action.KICK: f"{target} was kicked by {actor}{because}",
        m.Action.MUTE: f"{target} was muted{length} by {actor}{lifted}{because}",
        m.Action.UNMUTE: f"{target} was unmuted by {actor}",
        m.Action.BAN: f"{target} was banned{length} by {actor}{lifted}{because}",
        m.Action.UNBAN: f"{target} was unbanned by {actor}",
        m.Action.INVITE: f"{actor} invited {target}",
        m.Action.TOPIC_SET: f"{actor} set the topic: {value}" if value else f"{actor} cleared the topic",
        m.Action.KEY_SET: f"{actor} changed the room key",
        m.Action.MODERATED_SET: f"{actor} turned moderation {value}",
        m.Action.PRIVATE_SET: f"{actor} turned private mode {value}",
        m.Action.ANNOUNCEMENT_SET: (
            f"announcement by {actor}: {value}" if value else f"{actor} cleared the announcement"
        ),
        m.Action.TOPIC_LOCK_SET: f"{actor} turned the topic lock {value}",
        m.Action.MUTE_ENDED: f"{target}'s mute ended",
        m.Action.BAN_ENDED: f"{target}'s ban ended",
    }
    return truncate_utf8(sentences[a], m.MAX_NOTICE_BYTES)


class RoomRequests:
    """Section 18's requests and news, working on the `Relay`'s state."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        #: Rooms whose announcement got acknowledgements since the last flush.
        self._tally_due: set[str] = set()
        #: Timed mutes and bans as a heap of (until_ms, room, account key, kind).
        self._sanction_timers: list[tuple[int, str, str, str]] = []

    # ------------------------------------------------------------ start

    def _init_rooms(self) -> None:
        """Rooms, roles, sanctions, invitations and read marks from the store; timed sanctions
        are put on the timer, those that ended while the server was down end at the first tick."""
        records = {r.name: r for r in self.relay.store.load_rooms()}
        if m.DEFAULT_ROOM not in records:
            records[m.DEFAULT_ROOM] = RoomRecord(m.DEFAULT_ROOM)
            self.relay.store.save_room(records[m.DEFAULT_ROOM])
        for name, record in records.items():
            self.relay.room(name).apply(record)
        for name, count in self.relay.store.member_counts().items():
            if name in self.relay.rooms:
                self.relay.rooms[name].account_members = count
        for name, key, role in self.relay.store.load_roles():
            if name in self.relay.rooms:
                self.relay.rooms[name].roles[key] = role
        for sanction in self.relay.store.load_sanctions():
            room = self.relay.rooms.get(sanction.room)
            if room is not None:
                room.sanctions[(sanction.account_key, sanction.kind)] = sanction
                self._time_sanction(sanction)
        for name, key in self.relay.store.load_invites():
            if name in self.relay.rooms:
                self.relay.rooms[name].invites.add(key)
        for room in self.relay.rooms.values():
            if room.announcement_text:
                room.seen = self.relay.store.seen_by(room.name, room.announcement_id)
        for warning in self.relay.store.warnings:
            if warning.startswith("skipped"):
                log.warning("%s", warning, extra={"markup": False})  # the row may hold "["

    # ------------------------------------------------------------ requests

    def _refuse_bad_request(self, sess: Session, request_id: int, exc: DecodeError) -> None:
        """A section-18 request that does not decode is still answered (its request_id comes first)."""
        text = str(exc)
        code = ErrorCode.INVALID_ROOM if "invalid room name" in text else exc.code
        if code == ErrorCode.INVALID_ROOM:
            text = f"room names are {m.ROOM_RULE}"
        self.relay._send(sess, m.RequestDone(request_id, code, 0, truncate_utf8(text, m.MAX_NOTICE_BYTES)))

    def _done(self, sess: Session, request_id: int, code: int = 0, text: str = "", more: int = 0) -> None:
        self.relay._send(sess, m.RequestDone(request_id, code, more, truncate_utf8(text, m.MAX_NOTICE_BYTES)))

    def _on_room_request(
        self, sess: Session, req: m.JoinRoom | m.PartRoom | m.ListRooms | m.SetRoom | m.Moderate, now: float
    ) -> None:
        """Every request ends with one REQUEST_DONE; each costs a token of the message rate (18.13)."""
        if not sess.multi:
            self._done(sess, req.request_id, ErrorCode.PROTOCOL_VIOLATION, "rooms need CAP_ROOMS at login")
            return
        if not self.relay._take_token(sess, now):
            self._done(sess, req.request_id, ErrorCode.RATE_LIMITED, "slow down")
            return
        if isinstance(req, m.JoinRoom):
            self._on_join(sess, req, now)
        elif isinstance(req, m.PartRoom):
            self._on_part(sess, req, now)
        elif isinstance(req, m.ListRooms):
            self._on_list(sess, req)
        elif isinstance(req, m.SetRoom):
            self._on_set_room(sess, req, now)
        else:
            self._on_moderate(sess, req, now)

    def _account_role(self, sess: Session, room: Room | None) -> Role:
        assert sess.user is not None
        if sess.admin:
            return Role.ADMIN
        if sess.guest:
            return Role.GUEST
        return room.role_of(m.name_key(sess.user)) if room is not None else Role.MEMBER

    def _on_join(self, sess: Session, req: m.JoinRoom, now: float) -> None:
        user = sess.user
        assert user is not None
        key, now_ms = m.name_key(user), int(now * 1000)
        if req.room in sess.rooms:
            self._done(sess, req.request_id)  # already there: nothing changes
            return
        room = self.relay.rooms.get(req.room)
        if room is not None:
            refusal = room.check_join(key, self._account_role(sess, room), req.key, now_ms)
            if refusal is not None:
                self._done(sess, req.request_id, *refusal)
                return
        if len(sess.rooms) >= m.MAX_ROOMS_PER_USER:
            text = f"you are in {m.MAX_ROOMS_PER_USER} rooms already: /part one first"
            self._done(sess, req.request_id, ErrorCode.TOO_MANY_ROOMS, text)
            return
        if room is None:
            if len(self.relay.rooms) >= MAX_SERVER_ROOMS:
                text = f"this server holds {MAX_SERVER_ROOMS} rooms already: join one of them"
                self._done(sess, req.request_id, ErrorCode.TOO_MANY_ROOMS, text)
                return
            room = self._create_room(sess, req.room, now_ms)
        if key in room.invites:  # an invitation is used up by joining
            room.invites.discard(key)
            self.relay.store.remove_invites(room.name, user)
        if not sess.guest:
            self.relay.store.add_membership(user, room.name)
            room.account_members += 1
        self.relay.logins._enter_room(sess, room, req.resume_seq, now, announce=True)
        self._done(sess, req.request_id)

    def _create_room(self, sess: Session, name: str, now_ms: int) -> Room:
        """A JOIN of a room that does not exist: its sender becomes its creator and operator, and
        the topic lock is on (18.4)."""
        user = sess.user
        assert user is not None
        room = self.relay.room(name)
        room.apply(RoomRecord(name, user, "", m.ROOM_TOPIC_LOCKED, "", now_ms))
        self.relay.store.save_room(room.record())
        if not sess.guest:  # guests are never operators (18.11): an admin can op someone later
            room.roles[m.name_key(user)] = "op"
            self.relay.store.set_role(name, user, "op")
        if self.relay.cluster is not None:  # made on every relay (cluster/rooms.py)
            cluster = self.relay.cluster
            cluster.room_changed(RoomShare(cluster.relay_id, room.record(), creator_op=not sess.guest))
        log.info(_("%s created room %s"), user, name)
        return room

    def _on_part(self, sess: Session, req: m.PartRoom, now: float) -> None:
        room = sess.rooms.get(req.room)
        if room is None:
            self._done(sess, req.request_id, ErrorCode.NO_SUCH_ROOM, f"you are not in {req.room}")
            return
        self._leave_room(sess, room, now, f"left: {req.reason}" if req.reason else "left")
        self.relay._send(sess, m.RoomLeft(room.name))
        self._done(sess, req.request_id)

    def _leave_room(self, sess: Session, room: Room, now: float, reason: str) -> None:
        """`sess` is no longer in `room`; the others hear LEFT, the account's list forgets it."""
        user = sess.user
        assert user is not None
        del sess.rooms[room.name]
        sess.lagging.pop(room.name, None)
        if room.remove_member(user, sess.sid):
            self.relay._announce_membership(room, m.Left(room.name, user, int(now * 1000), reason), sess, now)
        if not sess.guest and self.relay.store.remove_membership(user, room.name):
            room.account_members = max(0, room.account_members - 1)
        log.info(_("%s left room %s (%s)"), user, room.name, _escape(reason))

    def _on_list(self, sess: Session, req: m.ListRooms) -> None:
        assert sess.user is not None
        key, role = m.name_key(sess.user), self._account_role(sess, None)
        visible = sorted(name for name, room in self.relay.rooms.items() if room.visible_to(key, role))
        for name in visible[:MAX_ROOM_INFOS]:
            room = self.relay.rooms[name]
            info = m.RoomInfo(req.request_id, name, len(room.members), room.topic, room.modes)
            self.relay._send(sess, info)
        self._done(sess, req.request_id, more=int(len(visible) > MAX_ROOM_INFOS))

    # ------------------------------------------------------------ ROOM_SET

    def _on_set_room(self, sess: Session, req: m.SetRoom, now: float) -> None:
        user = sess.user
        assert user is not None
        room = sess.rooms.get(req.room)
        if room is None:
            self._done(sess, req.request_id, ErrorCode.NO_SUCH_ROOM, f"you are not in {req.room}")
            return
        setting, value, now_ms = m.Setting(req.setting), req.value, int(now * 1000)
        if setting is m.Setting.QUIET or setting is m.Setting.SESSION:
            if not sess.classroom:
                text = "the classroom needs CAP_CLASSROOM"
                self._done(sess, req.request_id, ErrorCode.PROTOCOL_VIOLATION, text)
            else:
                self.relay.classroom.on_set_room(sess, room, req, now)  # section 20: classroom.py
            return
        role = room.member_role(m.name_key(user))
        if setting is m.Setting.TOPIC:
            act = Act.SET_TOPIC_LOCKED if room.modes & m.ROOM_TOPIC_LOCKED else Act.SET_TOPIC
        else:
            act = Act.CHANGE_SETTING
        if not may(act, role):
            text = f"only operators of {room.name} can {_SETTING_WORDS[setting]}"
            self._done(sess, req.request_id, ErrorCode.NOT_OPERATOR, text)
            return
        if setting in SWITCH_BITS:
            if value not in ("on", "off"):
                self._done(sess, req.request_id, ErrorCode.BAD_MESSAGE, "a switch is 'on' or 'off'")
                return
            bit = SWITCH_BITS[setting]
            modes = room.modes | bit if value == "on" else room.modes & ~bit
            changed, room.modes = modes != room.modes, modes
            if changed and setting is m.Setting.PRIVATE and value == "off" and room.invites:
                room.invites.clear()  # invitations last while the room is private (18.9)
                self.relay.store.remove_invites(room.name)
        elif setting is m.Setting.TOPIC:
            changed, room.topic = value != room.topic, value
        elif setting is m.Setting.KEY:
            changed, room.key = value != room.key, value
            room.modes = room.modes | m.ROOM_KEYED if value else room.modes & ~m.ROOM_KEYED
        else:
            changed = value != room.announcement_text
            if changed and value:
                room.announcement_id += 1
                room.seen = set()
                self.relay.store.forget_seen(room.name, room.announcement_id)
            room.announcement_text, room.announcement_by, room.announcement_ms = value, user, now_ms
        if not changed:
            self._done(sess, req.request_id)  # as it was: no news
            return
        self.relay.store.save_room(room.record())
        shown = "" if setting is m.Setting.KEY else value
        action = 16 + int(setting)
        text = describe(action, user, "", 0, shown)
        event = m.RoomEvent(room.name, now_ms, action, user, "", 0, shown, text)
        log.info(_("[bold yellow]%s[/] in %s: %s"), _escape(user), room.name, _escape(event.text))
        self._room_news(room, event)
        if setting is m.Setting.ANNOUNCEMENT:
            self._multi_members_send(room, self._announcement(room))
            if value:
                self._tally_due.add(room.name)
        else:
            self._send_states(room, now_ms)
        if self.relay.cluster is not None:  # the other relays' members hear it too (cluster/rooms.py)
            news = RoomNews(action, user, shown, now_ms)
            self.relay.cluster.room_changed(RoomShare(self.relay.cluster.relay_id, room.record(), news=news))
        self._done(sess, req.request_id)

    def apply_remote_room(self, share: RoomShare, now: float, *, live: bool) -> None:
        """Cluster mode: a room made or set on another relay. Made or brought up to date here (its
        record in the store); `live` with news: this relay's members hear it as if set here."""
        record = share.record
        room = self.relay.rooms.get(record.name)
        created = room is None
        if room is None:
            if len(self.relay.rooms) >= MAX_SERVER_ROOMS:
                return
            room = self.relay.room(record.name)
        old_announcement, old_private = room.announcement_id, room.modes & m.ROOM_PRIVATE
        room.apply(record)
        self.relay.store.save_room(record)
        if created:
            log.info(_("room %s made on another relay by %s"), record.name, record.creator)
            if share.creator_op and record.creator:
                room.roles[m.name_key(record.creator)] = "op"
                self.relay.store.set_role(record.name, record.creator, "op")
            self.relay.list_remote_members(room)
        if room.announcement_id != old_announcement:
            room.seen = set()
            self.relay.store.forget_seen(room.name, room.announcement_id)
        if old_private and not room.modes & m.ROOM_PRIVATE and room.invites:
            room.invites.clear()  # invitations last while the room is private (18.9)
            self.relay.store.remove_invites(room.name)
        news = share.news
        if not live or news is None or created:
            return
        text = describe(news.action, news.actor, "", 0, news.value)
        event = m.RoomEvent(room.name, news.ts_ms, news.action, news.actor, "", 0, news.value, text)
        self._room_news(room, event)
        if news.action == 16 + int(m.Setting.ANNOUNCEMENT):
            self._multi_members_send(room, self._announcement(room))
            if room.announcement_text:
                self._tally_due.add(room.name)
        else:
            self._send_states(room, int(now * 1000))

    # ------------------------------------------------------------ MODERATE

    def _on_moderate(self, sess: Session, req: m.Moderate, now: float) -> None:
        user = sess.user
        assert user is not None
        room = sess.rooms.get(req.room)
        if room is None:
            self._done(sess, req.request_id, ErrorCode.NO_SUCH_ROOM, f"you are not in {req.room}")
            return
        action, now_ms = m.Action(req.action), int(now * 1000)
        actor_role = room.member_role(m.name_key(user))
        if not may(Act.MODERATE, actor_role):
            text = f"only operators of {room.name} can {_ACTION_WORDS[action]}"
            self._done(sess, req.request_id, ErrorCode.NOT_OPERATOR, text)
            return
        tkey = m.name_key(req.user)
        target = self.relay.online_by_key.get(tkey)
        account = self.relay.store.get_account(req.user)
        remote = self.relay.cluster.remote.get(tkey) if self.relay.cluster is not None else None
        # Someone listed on another relay exists, even before its account's copy reaches this relay
        # (it signed up a moment ago there, 22.4); its guest and admin bits come with the listing.
        if account is None and (target is None or not target.guest) and remote is None:
            self._done(sess, req.request_id, ErrorCode.NO_SUCH_USER, f"no user named {req.user}")
            return
        tname = account.name if account is not None else remote.name if remote is not None else req.user
        if target is not None and target.user is not None:
            tname = target.user
        if target is not None:
            t_admin, t_guest = target.admin, target.guest
        elif account is None and remote is not None:
            t_admin, t_guest = bool(remote.flags & m.MEMBER_ADMIN), bool(remote.flags & m.MEMBER_GUEST)
        else:
            t_admin, t_guest = self.relay.store.is_admin(tname), account is None
        t_role = room.role_of(tkey, admin=t_admin, guest=t_guest)
        if action is m.Action.KICK and tkey not in room.members and tkey not in room.remote:
            self._done(sess, req.request_id, ErrorCode.NO_SUCH_USER, f"{tname} is not in {room.name}")
            return
        if action in _SANCTIONING:
            word = _ACTION_WORDS[action]
            if tkey == m.name_key(user):
                self._done(sess, req.request_id, ErrorCode.NOT_ALLOWED, f"you cannot {word} yourself")
                return
            if not may(Act.BE_SANCTIONED, t_role) and actor_role is not Role.ADMIN:
                text = f"{tname} is a server admin: cannot {word}"
                self._done(sess, req.request_id, ErrorCode.NOT_ALLOWED, text)
                return
        if action is m.Action.OP and not may(Act.BE_OPERATOR, t_role):
            text = f"{tname} is a guest: guests cannot be operators"
            self._done(sess, req.request_id, ErrorCode.NOT_ALLOWED, text)
            return
        if not self._apply_moderation(room, user, action, tkey, tname, target, req, now_ms, now):
            self._done(sess, req.request_id)  # nothing to change: no news
            return
        if self.relay.cluster is not None:  # the other relays do the same (cluster/moderation.py)
            self.relay.cluster.moderated(ModerationRecord(
                self.relay.cluster.relay_id, room.name, user, int(action), tname, req.minutes, req.reason,
                now_ms,
            ))  # fmt: skip
        self._done(sess, req.request_id)

    def apply_remote_moderation(self, record: ModerationRecord, now: float, *, live: bool) -> None:
        """Cluster mode: an operator on another relay did `record`. `live`: it happened just now,
        so this relay's members hear the news and a target here is kicked or banned as if it had
        been done here; otherwise (the state read at start) only the room's state is brought up to it."""
        room = self.relay.rooms.get(record.room)
        if room is None or record.action not in m.MODERATE_ACTIONS:
            return  # a room this relay does not have: nothing to hold here
        action, tkey = m.Action(record.action), m.name_key(record.target)
        if live:
            req = m.Moderate(0, room.name, action, record.target, record.minutes, record.reason)
            target = self.relay.online_by_key.get(tkey)
            self._apply_moderation(
                room, record.actor, action, tkey, record.target, target, req, record.ts_ms, now
            )
            return
        store = self.relay.store
        if action in (m.Action.OP, m.Action.VOICE):
            room.roles[tkey] = "op" if action is m.Action.OP else "voice"
            store.set_role(room.name, tkey, room.roles[tkey])
        elif action in (m.Action.DEOP, m.Action.DEVOICE) and room.roles.pop(tkey, None) is not None:
            store.set_role(room.name, tkey, None)
        elif action in (m.Action.MUTE, m.Action.BAN):
            until = record.ts_ms + record.minutes * 60_000 if record.minutes else None
            if until is None or until > int(now * 1000):
                kind = "mute" if action is m.Action.MUTE else "ban"
                sanction = SanctionRecord(room.name, tkey, kind, until, record.actor, record.reason)
                room.sanctions[(tkey, kind)] = sanction
                store.set_sanction(sanction)
                self._time_sanction(sanction)
        elif action in (m.Action.UNMUTE, m.Action.UNBAN):
            kind = "mute" if action is m.Action.UNMUTE else "ban"
            if room.sanctions.pop((tkey, kind), None) is not None:
                store.lift_sanction(room.name, tkey, kind)
        elif action is m.Action.INVITE:
            room.invites.add(tkey)
            store.add_invite(room.name, tkey)

    def _apply_moderation(
        self, room: Room, actor: str, action: m.Action, tkey: str, tname: str,
        target: Session | None, req: m.Moderate, now_ms: int, now: float,
    ) -> bool:  # fmt: skip
        """Carry out a MODERATE that passed its checks; False if it changed nothing."""
        minutes = req.minutes if action in (m.Action.MUTE, m.Action.BAN) else 0
        reason = req.reason if action in _SANCTIONING else ""
        role = room.roles.get(tkey)
        if action is m.Action.OP:
            if role == "op":
                return False
            room.roles[tkey] = "op"
            self.relay.store.set_role(room.name, tkey, "op")
        elif action is m.Action.DEOP or action is m.Action.DEVOICE:
            if role != ("op" if action is m.Action.DEOP else "voice"):
                return False
            del room.roles[tkey]
            self.relay.store.set_role(room.name, tkey, None)
        elif action is m.Action.VOICE:
            if role is not None:  # voiced already, or an operator (who speaks anyway)
                return False
            room.roles[tkey] = "voice"
            self.relay.store.set_role(room.name, tkey, "voice")
        elif action is m.Action.MUTE or action is m.Action.BAN:
            kind = "mute" if action is m.Action.MUTE else "ban"
            until = now_ms + minutes * 60_000 if minutes else None
            sanction = SanctionRecord(room.name, tkey, kind, until, actor, reason)
            room.sanctions[(tkey, kind)] = sanction
            self.relay.store.set_sanction(sanction)
            self._time_sanction(sanction)
        elif action is m.Action.UNMUTE or action is m.Action.UNBAN:
            kind = "mute" if action is m.Action.UNMUTE else "ban"
            if room.sanctions.pop((tkey, kind), None) is None:
                return False
            self.relay.store.lift_sanction(room.name, tkey, kind)
        elif action is m.Action.INVITE:
            room.invites.add(tkey)
            self.relay.store.add_invite(room.name, tkey)
        text = describe(action, actor, tname, minutes, reason)
        log.info(_("[bold yellow]%s[/] in %s: %s"), _escape(actor), room.name, _escape(text))
        # The news first, so that a kicked or banned member hears it before it leaves (18.10).
        self._room_news(room, m.RoomEvent(room.name, now_ms, action, actor, tname, minutes, reason, text))
        if action is m.Action.KICK or action is m.Action.BAN:
            if target is not None and room.name in target.rooms:
                code = ErrorCode.KICKED if action is m.Action.KICK else ErrorCode.BANNED
                until_ms = 0
                if action is m.Action.BAN:
                    until_ms = now_ms + minutes * 60_000 if minutes else m.UNTIL_LIFTED_MS
                self._eject(target, room, code, actor, reason, until_ms, text, now)
            elif action is m.Action.BAN and self.relay.store.remove_membership(tname, room.name):
                room.account_members = max(0, room.account_members - 1)  # dropped from its list
        elif action is m.Action.INVITE:
            if target is not None:
                line = f"{actor} invites you to #{room.name}: /join {room.name}"
                notice = m.Notice(ErrorCode.ROOM_NEWS, truncate_utf8(line, m.MAX_NOTICE_BYTES))
                self.relay._send(target, notice)
        elif target is not None and room.name in target.rooms and target.multi:
            self.relay._send(target, room.state_for(tkey, now_ms))  # its role or mute changed
            if action is m.Action.OP:
                self.relay.classroom.on_enter(target, room)  # a new operator gets the help queue (20.3)
        return True

    def _eject(
        self, target: Session, room: Room, code: ErrorCode, by: str, reason: str, until_ms: int, text: str,
        now: float,
    ) -> None:  # fmt: skip
        """KICK or BAN of a member who is online in the room (18.9, 18.12)."""
        word = "kicked" if code == ErrorCode.KICKED else "banned"
        if target.multi:
            self._leave_room(target, room, now, f"{word} by {by}")
            self.relay._send(target, m.RoomLeft(room.name, int(code), by, reason, until_ms))
        else:  # a version-1 session cannot be in no room: it ends (18.12)
            self.relay._send(target, m.Closed(code, text))
            if target.user is not None and self.relay.store.remove_membership(target.user, room.name):
                room.account_members = max(0, room.account_members - 1)
            self.relay._end_session(target, f"{word} by {by}", now)

    # ------------------------------------------------------------ news, announcements, sanctions

    def _room_news(self, room: Room, event: m.RoomEvent) -> None:
        """A ROOM_EVENT to every member online in `room`; NOTICE(ROOM_NEWS) to version-1 sessions."""
        body = encode_message(event)
        notice = encode_message(m.Notice(ErrorCode.ROOM_NEWS, event.text))
        for sid in room.members.values():
            sess = self.relay.sessions.get(sid)
            if sess is None:
                continue
            if sess.multi:
                sess.link.send(m.Kind.ROOM_EVENT, body)
            else:
                sess.link.send(m.Kind.NOTICE, notice)
            self.relay._dirty.add(sess)

    def _multi_members_send(self, room: Room, message: m.Message) -> None:
        body = encode_message(message)
        for sid in room.members.values():
            sess = self.relay.sessions.get(sid)
            if sess is not None and sess.multi:
                sess.link.send(message.KIND, body)
                self.relay._dirty.add(sess)

    def _send_states(self, room: Room, now_ms: int) -> None:
        """ROOM_STATE to every CAP_ROOMS member (a topic or mode changed)."""
        for key, sid in room.members.items():
            sess = self.relay.sessions.get(sid)
            if sess is not None and sess.multi:
                self.relay._send(sess, room.state_for(key, now_ms))

    def _announcement(self, room: Room) -> m.Announcement:
        return m.Announcement(
            room.name, room.announcement_id, room.announcement_by, room.announcement_ms,
            room.announcement_text,
        )  # fmt: skip

    def _announcement_line(self, room: Room) -> str:
        line = f"announcement by {room.announcement_by}: {room.announcement_text}"
        return truncate_utf8(line, m.MAX_NOTICE_BYTES)

    def _tally_names(self, room: Room) -> list[str]:
        """Whom the tally counts: the accounts with the room in their list, and its online guests."""
        names = self.relay.store.member_names(room.name)
        names += [room.display[k] for k, bits in room.member_flags.items() if bits & m.MEMBER_GUEST]
        return names

    def _on_announcement_seen(self, sess: Session, message: m.AnnouncementSeen, now: float) -> None:
        """Recorded once per member and announcement; anything but the current one is ignored. No token."""
        room = sess.rooms.get(message.room)
        if sess.user is None or room is None or not room.announcement_text:
            return
        key = m.name_key(sess.user)
        if message.announcement_id != room.announcement_id or key in room.seen:
            return
        room.seen.add(key)
        if not sess.guest:
            self.relay.store.mark_seen(room.name, room.announcement_id, key)
        self._tally_due.add(room.name)

    def _send_tallies(self) -> None:
        """ANNOUNCEMENT_TALLY to the operators online in each room whose acknowledgements changed:
        once per flush, however many arrived in it (18.10)."""
        due, self._tally_due = self._tally_due, set()
        for name in due:
            room = self.relay.rooms.get(name)
            if room is None or not room.announcement_text:
                continue
            # Operators and admins are found from the room's roles and flags, not its whole list.
            candidates = [k for k, role in room.roles.items() if role == "op"]
            candidates += [k for k, bits in room.member_flags.items() if bits & m.MEMBER_ADMIN]
            ops = []
            for key in dict.fromkeys(candidates):
                sid = room.members.get(key)
                sess = self.relay.sessions.get(sid) if sid is not None else None
                if sess is not None and sess.multi and room.member_role(key) >= Role.OP:
                    ops.append(sess)
            if not ops:
                continue
            body = encode_message(room.tally(self._tally_names(room)))
            for sess in ops:
                sess.link.send(m.Kind.ANNOUNCEMENT_TALLY, body)
                self.relay._dirty.add(sess)

    def _time_sanction(self, sanction: SanctionRecord) -> None:
        if sanction.until_ms is not None:
            entry = (sanction.until_ms, sanction.room, sanction.account_key, sanction.kind)
            heapq.heappush(self._sanction_timers, entry)

    def _next_sanction_end(self) -> float | None:
        return self._sanction_timers[0][0] / 1000 if self._sanction_timers else None

    def _end_sanctions(self, now: float) -> None:
        """Timed mutes and bans whose end has come end by themselves (18.9), with MUTE_ENDED or
        BAN_ENDED news; a sanction changed or lifted since its entry was queued is skipped."""
        now_ms = int(now * 1000)
        while self._sanction_timers and self._sanction_timers[0][0] <= now_ms:
            until, name, key, kind = heapq.heappop(self._sanction_timers)
            room = self.relay.rooms.get(name)
            found = room.sanctions.get((key, kind)) if room is not None else None
            if room is None or found is None or found.until_ms != until:
                continue
            del room.sanctions[(key, kind)]
            self.relay.store.lift_sanction(name, key, kind)
            account = self.relay.store.get_account(key)
            target = room.display.get(key) or (account.name if account is not None else key)
            action = m.Action.MUTE_ENDED if kind == "mute" else m.Action.BAN_ENDED
            text = describe(action, "", target, 0, "")
            log.info(_("in %s: %s"), name, text)
            self._room_news(room, m.RoomEvent(name, now_ms, action, "", target, 0, "", text))
            sess = self.relay.online_by_key.get(key)
            if kind == "mute" and sess is not None and sess.multi and name in sess.rooms:
                self.relay._send(sess, room.state_for(key, now_ms))
