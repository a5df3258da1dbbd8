"""Logins for the relay (docs/protocol.md 8.2, 17 and 18.3): the password checks and their queue,
tickets, guests with the class password, and joining a logged-in session to its rooms.

Part of `Relay` (relay.py): it works on the relay's state, which it reaches as `self.relay`.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
from typing import TYPE_CHECKING

from ..i18n import _
from ..protocol import messages as m
from ..protocol.errors import ErrorCode
from .accounts import PasswordCheck
from .classroom_state import clean_seat
from .formatting import _fmt, _ms
from .room import Role, Room

if TYPE_CHECKING:
    from .relay import Relay, Session

log = logging.getLogger("labchat.server.relay")

#: After a login, this many SAYs are checked against the store for a msg_id already stored: a client
#: resends its unconfirmed messages first thing after reconnecting (ours keeps at most 256 in flight).
RESEND_CHECK_SAYS = 1024
#: A waiting login hears LOGIN_QUEUED at least this often (docs/protocol.md 17.3)...
QUEUED_RESEND_S = 2.0
#: ...and at most this often when only its position changed.
QUEUED_UPDATE_S = 1.0


class Logins:
    """LOGIN to logged in; see the module docstring."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def _on_login(self, sess: Session, login: m.Login, now: float, *, looked_up: bool = False) -> None:
        """docs/protocol.md 8.2 in order: room, ticket, unknown name, throttle and queue.
        `looked_up`: in a cluster, the accounts bucket has been read for this name already."""
        if sess.user is not None or sess.login_pending:
            return
        if self.relay.shutting_down:
            self.relay._send(sess, m.Closed(ErrorCode.SERVER_SHUTDOWN, "the server is shutting down"))
            return
        if login.room not in self.relay.rooms:
            # Rooms are the server's to create: a client naming any room must not grow memory.
            self._login_failed(sess, login, ErrorCode.NO_SUCH_ROOM, f"no room named {login.room}", now)
            return
        record = self.relay.store.password_record(login.user)
        if record is None and self.relay.cluster is not None and not looked_up:
            # An account made a moment ago on another relay may not be copied here yet (22.4):
            # the bucket is read first, so that it is not taken for a new name.
            # The session stays under the pre-login bounds (16 per host, 10 s): a flood of unknown
            # names costs at most that many bucket reads at once, each bounded in time.
            sess.login_pending = True
            self.relay.cluster.look_up(sess.sid, login)
            return
        if login.ticket:
            salt = record[0] if record is not None else b""
            if record is None:
                # A guest's ticket is good while that guest's session is online (18.11): it is sealed
                # to a salt of the session's own, so once the guest has left, and the name may be
                # someone else's, an old ticket cannot take it from them.
                online = self.relay.online_by_key.get(m.name_key(login.user))
                salt = online.guest_salt if online is not None and online.guest else b""
            if salt and self.relay.tickets.open(login.ticket, login.user, salt, now):
                self.relay.stats.ticket_logins += 1
                self._logged_in(
                    sess, login, salt, registered=False, now=now, via_ticket=True, guest=record is None
                )  # fmt: skip
                return
            if not login.password:
                self._login_failed(
                    sess, login, ErrorCode.TICKET_REJECTED,
                    "Your saved login has expired: log in with your password", now,
                )  # fmt: skip
                return
        if record is None and self.relay.config.class_password is not None:
            guest = self.relay.online_by_key.get(m.name_key(login.user))
            if guest is not None and guest.guest:
                text = f"{login.user} is in use by a guest now: pick another name"
                self._login_failed(sess, login, ErrorCode.NAME_IN_USE, text, now)
                return
        elif record is None and not self._may_register(sess, login, now):
            return
        check = PasswordCheck(sess.sid, login, record, self.relay.store.scrypt_n)
        refusal = self.relay.gate.admit(check, sess.addr[0], now)
        if refusal is not None:
            wait = max(1, math.ceil(refusal.wait_s))
            if refusal.reason == "busy":
                code, text = ErrorCode.SERVER_BUSY, f"the server is busy with logins: try again in {wait} s"
            elif refusal.reason == "name":
                code, text = ErrorCode.LOGIN_THROTTLED, (
                    f"too many failed logins for {login.user}: try again in {wait} s"
                )
            else:
                code, text = ErrorCode.LOGIN_THROTTLED, (
                    f"too many failed logins from your address: try again in {wait} s"
                )
            self._login_failed(sess, login, code, text, now, retry_after_s=wait)
            return
        sess.login_pending = True
        # Admitted to a password check: the channel's pre-login bounds (10 s, 16 per host) are for
        # sessions nobody has vouched for. This one waits in a queue bounded by the gate, and a
        # class behind one address, or a long queue, must not be cut off while it waits. If the
        # check fails, `_login_failed` ends the session, so it cannot be parked here.
        self.relay.channel.mark_authenticated(sess.sid)
        self._start_checks(now)
        if check in self.relay.gate.waiting:
            self._tell_queued(sess, check, now)

    def _may_register(self, sess: Session, login: m.Login, now: float) -> bool:
        """An unknown name: may this LOGIN register it? If not, it has been answered."""
        if not self.relay.config.registration_open:
            self._login_failed(
                sess, login, ErrorCode.REGISTRATION_CLOSED,
                "Registration is closed: ask the server's admin for an account", now,
            )  # fmt: skip
            return False
        if login.flags & m.LOGIN_NO_REGISTER:
            self._login_failed(
                sess, login, ErrorCode.NO_SUCH_ACCOUNT,
                f"No account {login.user!r} here yet: log in again to create it", now,
            )  # fmt: skip
            return False
        if len(login.password) < m.MIN_NEW_PASSWORD_CHARS:
            self._login_failed(
                sess, login, ErrorCode.INVALID_PASSWORD,
                f"New accounts need a password of at least {m.MIN_NEW_PASSWORD_CHARS} characters", now,
            )  # fmt: skip
            return False
        wait = self.relay.registrations.take(sess.addr[0], now)
        if wait > 0:
            minutes = max(1, math.ceil(wait / 60))
            self._login_failed(
                sess, login, ErrorCode.REGISTRATION_LIMITED,
                f"too many new accounts from your address: try again in {minutes} min",
                now, retry_after_s=math.ceil(wait),
            )  # fmt: skip
            return False
        return True

    def _start_checks(self, now: float) -> None:
        """Hand the transport every check the gate lets run now."""
        for check in self.relay.gate.start_ready(now):
            if check.session_id in self.relay.sessions:
                self.relay.stats.password_checks += 1
                self.relay._checks.append(check)
            else:  # the session went away while it waited
                self.relay.gate.finished(check, now)
        if self.relay.gate.waiting and self.relay._queue_tick_at is None:
            self.relay._queue_tick_at = now + QUEUED_UPDATE_S

    def _tell_queued(self, sess: Session, check: PasswordCheck, now: float) -> None:
        position = self.relay.gate.position(check)
        check.told_position, check.told_at = position, now
        eta_ms = min(0xFFFF_FFFF, int(self.relay.gate.eta_s(position) * 1000))
        self.relay._send(sess, m.LoginQueued(position, eta_ms))

    def _on_queue_tick(self, now: float) -> None:
        """Tell waiting logins their place when it changed (at most once a second), and every 2 s
        anyway, so that their clients keep waiting."""
        self.relay._queue_tick_at = None
        self._start_checks(now)
        for position, check in enumerate(self.relay.gate.waiting):
            sess = self.relay.sessions.get(check.session_id)
            if sess is None:
                continue
            if position != check.told_position or now - check.told_at >= QUEUED_RESEND_S - 1e-6:
                self._tell_queued(sess, check, now)
        if self.relay.gate.waiting and self.relay._queue_tick_at is None:
            self.relay._queue_tick_at = now + QUEUED_UPDATE_S

    def password_checks(self) -> list[PasswordCheck]:
        """scrypt work for the transport to run off the event loop, then hand to `complete_login`."""
        checks, self.relay._checks = self.relay._checks, []
        return checks

    def complete_login(self, check: PasswordCheck, now: float) -> None:
        """Finish a login once its password check has run (`check.ok` and, for new accounts, the hash)."""
        self.relay._now = now
        self.relay.gate.finished(check, now)
        self._start_checks(now)
        sess = self.relay.sessions.get(check.session_id)
        if sess is None or not sess.login_pending:
            return
        sess.login_pending = False
        login = check.login
        registered = False
        salt = check.record[0] if check.record is not None else b""
        if check.record is None and self.relay.config.class_password is not None:
            # 18.11: a name with no account is a guest if it knows the class password. The check
            # went through the gate like any password check, so guesses are throttled the same way.
            if not hmac.compare_digest(login.password.encode(), self.relay.config.class_password.encode()):
                self._login_failed(sess, login, ErrorCode.INVALID_PASSWORD, "wrong class password", now)
                return
            taken = m.name_key(login.user) in self.relay.online_by_key
            cluster = self.relay.cluster
            taken = taken or (cluster is not None and m.name_key(login.user) in cluster.remote)
            if taken or self.relay.store.get_account(login.user) is not None:
                self._login_failed(
                    sess, login, ErrorCode.NAME_IN_USE, f"{login.user} is in use: pick another name", now
                )  # fmt: skip
                return
            self._logged_in(sess, login, b"", registered=False, now=now, guest=True)
            return
        if check.record is None:
            assert check.new_hash is not None
            if self.relay.store.get_account(login.user) is None:
                if self.relay.cluster is not None:
                    # A cluster's accounts are its bucket's: the name is claimed there first
                    # (create = compare-and-set on absence), then `registration_done` goes on.
                    sess.login_pending = True
                    self.relay.cluster.register(check)
                    return
                salt, digest = check.new_hash
                self.relay.store.insert_account(login.user, salt, digest, check.scrypt_n)
                registered = True
            elif not self.relay.store.check_password(login.user, login.password):
                self._login_failed(sess, login, ErrorCode.INVALID_PASSWORD, "Invalid password", now)
                return
            else:
                record = self.relay.store.password_record(login.user)
                salt = record[0] if record is not None else b""
        elif not check.ok:
            self._login_failed(sess, login, ErrorCode.INVALID_PASSWORD, "Invalid password", now)
            return
        self._logged_in(sess, login, salt, registered=registered, now=now)

    def account_looked_up(self, session_id: bytes, login: m.Login, now: float) -> None:
        """Cluster mode: the bucket has been read for `login`'s name (and its account, if it has one,
        copied into the store): the login goes on as if the copy had always been here."""
        self.relay._now = now
        sess = self.relay.sessions.get(session_id)
        if sess is None or not sess.login_pending or sess.user is not None:
            return
        sess.login_pending = False
        self._on_login(sess, login, now, looked_up=True)

    def registration_done(
        self, check: PasswordCheck, created: bool, now: float, *, matched: bool | None = None
    ) -> None:
        """Cluster mode: the accounts bucket took the new account (`created`), or the name has an
        account already (made a moment ago on another relay; 22.4). Then `matched` says whether the
        password is that account's (a login, not a registration), or is None when the account could
        not be read back: the login fails cleanly and the next one finds it."""
        self.relay._now = now
        sess = self.relay.sessions.get(check.session_id)
        if sess is None or not sess.login_pending:
            return
        sess.login_pending = False
        login = check.login
        if not created and matched is not None:
            if not matched:
                self._login_failed(sess, login, ErrorCode.INVALID_PASSWORD, "Invalid password", now)
                return
            record = self.relay.store.password_record(login.user)
            self._logged_in(sess, login, record[0] if record else b"", registered=False, now=now)
            return
        if not created or check.new_hash is None:
            self._login_failed(
                sess, login, ErrorCode.NAME_IN_USE,
                f"{login.user} was registered a moment ago on another server: log in again", now,
            )  # fmt: skip
            return
        salt, digest = check.new_hash
        if self.relay.store.get_account(login.user) is None:  # the mirror may have it already
            self.relay.store.insert_account(login.user, salt, digest, check.scrypt_n)
        self._logged_in(sess, login, salt, registered=True, now=now)

    def _logged_in(
        self,
        sess: Session,
        login: m.Login,
        salt: bytes,
        *,
        registered: bool,
        now: float,
        via_ticket: bool = False,
        guest: bool = False,
    ) -> None:
        """The password, the ticket or the class password was good: join the rooms (18.3), hand
        out a fresh ticket."""
        account = None if guest else self.relay.store.get_account(login.user)
        user = account.name if account else login.user
        key = m.name_key(user)
        multi = bool(login.flags & m.CAP_ROOMS and self.relay.config.capabilities & m.CAP_ROOMS)
        admin = account is not None and self.relay.store.is_admin(user)
        rooms = self._rooms_at_login(user, multi, guest, admin, login, now)
        if isinstance(rooms, tuple):
            self._login_failed(sess, login, rooms[0], rooms[1], now)
            return
        self.relay.channel.mark_authenticated(sess.sid)  # lifts the channel's pre-login limits
        self.relay.gate.succeeded(login.user, sess.addr[0], now)
        sess.user, sess.caps, sess.multi, sess.admin, sess.guest = user, login.flags, multi, admin, guest
        sess.classroom = multi and bool(login.flags & self.relay.config.capabilities & m.CAP_CLASSROOM)
        sess.seat = clean_seat(login.seat)
        sess.tokens, sess.tokens_at = float(self.relay.config.rate_burst), now
        sess.fresh_says = RESEND_CHECK_SAYS
        old = self.relay.online_by_key.get(key)
        self.relay.online_by_key[key] = sess
        if self.relay.cluster is not None:
            # The name is claimed in the presence bucket (newest login wins across relays), and
            # private messages held for it anywhere in the cluster come here.
            self.relay.cluster.presence_changed(key)
            self.relay.cluster.logged_in(user)
        self.relay.stats.logins += 1
        flags = self.relay.config.capabilities | (m.LOGIN_OK_GUEST if guest else 0)
        if self.relay.several_relays:
            flags |= m.CAP_FAILOVER  # one of several relays: RELAYS follows (22.1)
        if not multi:
            # 18.12: nothing of section 18 (nor 20) to a version-1 client
            flags &= ~(m.CAP_ROOMS | m.LOGIN_OK_GUEST | m.CAP_CLASSROOM)
        self.relay._send(sess, m.LoginOk(
            user, rooms[0].name, self.relay.config.server_name, int(registered),
            int(self.relay.config.client_timeout_s * 1000), flags,
        ))  # fmt: skip
        if guest:
            salt = sess.guest_salt = os.urandom(16)
        if salt:
            tickets = self.relay.tickets
            self.relay._send(sess, m.Ticket(tickets.issue(user, salt, now), tickets.lifetime_s))
        self.relay.send_relays(sess)
        kept: dict[str, Room] = {}
        if old is not None and old is not sess:
            # One live session per name: the newer login wins, and the old client is told why.
            log.info(_("%s logged in again from %s; replacing the session from %s"),
                     user, _fmt(sess.addr), _fmt(old.addr))  # fmt: skip
            self.relay._send(old, m.Closed(ErrorCode.REPLACED, f"logged in again from {_fmt(sess.addr)}"))
            sess.away = old.away
            kept = old.rooms
            new_names = {r.name for r in rooms}
            for room in list(kept.values()):
                if room.name not in new_names and room.remove_member(user, old.sid):
                    self.relay._announce_membership(room, m.Left(room.name, user, _ms(now), "quit"), old, now)
            self.relay._forget_session(old)
            old.closing_at = now + self.relay.config.linger_s
            self.relay._schedule(old)
        else:
            log.info(
                _("[bold green]%s joined[/] from %s (%d online)%s%s"),
                user, _fmt(sess.addr), len(self.relay.online_by_key),
                _(" with a resumption ticket") if via_ticket else "", _(" as a guest") if guest else "",
            )  # fmt: skip
        cursors = dict(login.cursors[: m.MAX_CURSORS])
        for room in rooms:
            resume = login.resume_seq if room.name == login.room else cursors.get(room.name, 0)
            self._enter_room(sess, room, resume, now, announce=room.name not in kept)
        self.relay.privates._deliver_held(sess, now)
        self.relay.files.logged_in(sess, now)

    def _rooms_at_login(
        self, user: str, multi: bool, guest: bool, admin: bool, login: m.Login, now: float
    ) -> list[Room] | tuple[ErrorCode, str]:
        """The rooms a login joins (18.3, 18.12), or why LOGIN's room refuses it."""
        key, now_ms = m.name_key(user), _ms(now)
        rooms: list[Room] = []
        if multi and not guest:
            for name in self.relay.store.memberships_of(user):
                room = self.relay.rooms.get(name)
                # A member comes back without key or invitation: only a ban in force drops the room.
                if room is None or (not admin and room.sanction(key, "ban", now_ms) is not None):
                    self.relay.store.remove_membership(user, name)
                    continue
                if len(rooms) < m.MAX_ROOMS_PER_USER:
                    rooms.append(room)
        if rooms:
            return rooms
        room = self.relay.rooms[login.room]
        role = room.role_of(key, admin=admin, guest=guest)
        refusal = room.check_join(key, role, "", now_ms)
        if refusal is not None:
            return refusal
        if multi and not guest:
            self.relay.store.add_membership(user, room.name)
            room.account_members += 1
        return [room]

    def _enter_room(self, sess: Session, room: Room, resume_seq: int, now: float, *, announce: bool) -> None:
        """`sess` joins `room`: the room hears JOINED (unless the user was in it already, on the
        session this one replaces), the session gets 18.3's sequence for the room."""
        user = sess.user
        assert user is not None
        key = m.name_key(user)
        flags = (m.MEMBER_GUEST if sess.guest else 0) | (m.MEMBER_ADMIN if sess.admin else 0)
        room.add_member(user, sess.sid, flags)
        sess.rooms[room.name] = room
        if sess.away is not None:
            room.away[key] = sess.away
        if announce and key not in room.remote:  # listed already when it moves from another relay
            joined = m.Joined(room.name, user, _ms(now), sess.seat)
            self.relay._announce_membership(room, joined, sess, now)
        elif self.relay.cluster is not None:
            self.relay.cluster.presence_changed(key)
        if sess.multi:
            self.relay._send(sess, room.state_for(key, _ms(now)))
            if room.announcement_text:
                self.relay._send(sess, self.relay.room_requests._announcement(room))
                if room.member_role(key) >= Role.OP:
                    self.relay._send(sess, room.tally(self.relay.room_requests._tally_names(room)))
        self._replay_history(sess, room, resume_seq)
        self.relay._send_presence(sess, room)
        self.relay.classroom.on_enter(sess, room)  # the help queue to an operator, the open poll (20)
        if not sess.multi and room.announcement_text:
            line = self.relay.room_requests._announcement_line(room)
            self.relay._send(sess, m.Notice(ErrorCode.ROOM_NEWS, line))
        self.relay.files.entered_room(sess, room.name, now)

    def _login_failed(
        self, sess: Session, login: m.Login, code: ErrorCode, text: str, now: float, *, retry_after_s: int = 0
    ) -> None:
        """Refuse a login and end the session: a client tries again on a new one (docs/protocol.md
        8.2). Wrong passwords were charged to the throttle when their check was admitted."""
        self.relay.stats.failed_logins += 1
        log.info(_("login as %s from %s refused: %s"), login.user, _fmt(sess.addr), text)
        self.relay._send(sess, m.LoginFailed(code, text, min(0xFFFF_FFFF, retry_after_s * 1000)))
        sess.closing_at = now + self.relay.config.linger_s  # long enough to retransmit the refusal
        self.relay._schedule(sess)

    def _replay_history(self, sess: Session, room: Room, resume_seq: int) -> None:
        if resume_seq == 0:
            history = self.relay.store.last_messages(room.name, self.relay.config.history_on_join)
            flags = m.FLAG_HISTORY
        else:
            history = room.recent_after(resume_seq, self.relay.config.max_backlog_frames) or []
            if not history and resume_seq < room.next_seq - 1:
                limit = self.relay.config.max_backlog_frames
                history = self.relay.store.messages_after(room.name, resume_seq, limit)
            flags = 0
        last = max(resume_seq, room.next_seq - 1)
        for stored in history:
            self.relay._send_stored(sess, stored, flags)
            last = stored.seq
            if resume_seq and sess.link.backlog >= self.relay.config.max_backlog_frames:
                break  # long messages are many frames each: the rest comes by catch-up (8.8)
        if last < room.next_seq - 1:
            sess.lagging[room.name] = last
