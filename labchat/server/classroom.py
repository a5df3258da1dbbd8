"""The relay's classroom (docs/protocol.md section 20): seats, the help queue (HAND, QUEUE_TAKE),
polls (POLL_OPEN, POLL_VOTE, POLL_CLOSE), quiet mode and class sessions (ROOM_SET QUIET / SESSION).

Part of `Relay` (relay.py), like room_requests.py: it works on the relay's state, reached as
`self.relay`. Who may do what is room.py's table (`may`); what a queue or a poll becomes after a
request is classroom_state.py's; the durable copy is classroom_store.py's. This module decides who
is told what, and when.
"""

from __future__ import annotations

import heapq
import logging
from typing import TYPE_CHECKING

from ..i18n import _
from ..protocol import messages as m
from ..protocol.errors import ErrorCode
from ..protocol.text import truncate_utf8
from ..protocol.wire import MAX_FRAME_BODY_BYTES, encode_message
from .classroom_state import DoneItem, HelpQueue, PollError, QueueFull, RoomPoll, quiet_until
from .classroom_store import ClassroomStore
from .formatting import _escape, _ms
from .privates import _private_frames
from .room import Act, Role, Room, may

if TYPE_CHECKING:
    from .relay import LongChat, Relay, Session

log = logging.getLogger("labchat.server.relay")

#: Requests of this section, answered by REQUEST_DONE, each costing a token (20.7).
CLASSROOM_REQUESTS = (m.Hand, m.QueueTake, m.PollOpen, m.PollVote, m.PollClose)
CLASSROOM_REQUEST_KINDS = frozenset(
    {m.Kind.HAND, m.Kind.QUEUE_TAKE, m.Kind.POLL_OPEN, m.Kind.POLL_VOTE, m.Kind.POLL_CLOSE}
)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe(action: int, actor: str, target: str, minutes: int, value: str) -> str:
    """ROOM_EVENT `text` for the news of this section (the server's sentence, 18.10)."""
    a = m.Action(action)
    if a is m.Action.QUIET_SET:
        if value == "on":
            return f"{actor} turned quiet mode on for {minutes} min: messages go to the teachers only"
        return f"{actor} turned quiet mode off" if actor else "quiet mode ended"
    if a is m.Action.SESSION_STARTED:
        return f"{actor} started the class session"
    if a is m.Action.HAND_RAISED:
        about = f": {value}" if value else ""
        return truncate_utf8(
            f"{target} raised a hand ({_ordinal(minutes)} in the queue){about}", m.MAX_NOTICE_BYTES
        )
    if a is m.Action.HAND_TAKEN:
        return f"{actor} is coming to {target}"
    if a is m.Action.HAND_LOWERED:
        return f"{target}'s hand is down" if actor == target else f"{actor} marked {target}'s question done"
    raise ValueError(f"not a classroom action: {action}")


class Classroom:
    """Section 20 on the relay's state; see the module docstring."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.store = ClassroomStore(relay.store)
        self.queues: dict[str, HelpQueue] = {}
        #: Each room's open poll (20.4: at most one); closed polls live in the store only.
        self.polls: dict[str, RoomPoll] = {}
        #: Rooms whose open poll got votes since the last flush: its operators get it once per flush.
        self._polls_due: set[str] = set()
        #: Quiet mode's ends as a heap of (until_ms, room).
        self._quiet_timers: list[tuple[int, str]] = []

    # ------------------------------------------------------------ start

    def load(self) -> None:
        """Queues, open polls and quiet mode from the store. A quiet mode that ended while the
        server was down ends (with its news) at the first tick."""
        for name, items in self.store.load_queues().items():
            if name in self.relay.rooms:
                self.queues[name] = HelpQueue(items)
        for name, poll in self.store.load_polls(open_only=True):
            if name in self.relay.rooms:
                self.polls[name] = poll
        for settings in self.store.load_settings():
            room = self.relay.rooms.get(settings.room)
            if room is not None and settings.quiet_until_ms:
                room.quiet_until_ms = settings.quiet_until_ms
                heapq.heappush(self._quiet_timers, (settings.quiet_until_ms, room.name))

    def queue(self, room: str) -> HelpQueue:
        found = self.queues.get(room)
        if found is None:
            found = self.queues[room] = HelpQueue()
        return found

    # ------------------------------------------------------------ who is who

    def _role(self, sess: Session, room: Room) -> Role:
        assert sess.user is not None
        return room.member_role(m.name_key(sess.user))

    def _ops(self, room: Room, *, classroom_only: bool = True) -> list[Session]:
        """The operators (and admins) online in `room`: those that speak this section, or (with
        `classroom_only` False) every CAP_ROOMS one. Found from the room's roles and flags, not by
        walking its whole member list."""
        candidates = [k for k, role in room.roles.items() if role == "op"]
        candidates += [k for k, bits in room.member_flags.items() if bits & m.MEMBER_ADMIN]
        out = []
        for key in dict.fromkeys(candidates):
            sid = room.members.get(key)
            sess = self.relay.sessions.get(sid) if sid is not None else None
            if sess is None or not (sess.classroom if classroom_only else sess.multi):
                continue
            if may(Act.SEE_QUEUE, room.member_role(key)):
                out.append(sess)
        return out

    def _members(self, room: Room) -> list[Session]:
        out = []
        for sid in room.members.values():
            sess = self.relay.sessions.get(sid)
            if sess is not None and sess.classroom:
                out.append(sess)
        return out

    def seats(self, room: Room) -> tuple[str, ...]:
        """PRESENCE `seats` (20.2): one per name of `room.users()`, in the same order."""
        seats = []
        for user in room.users():
            key = m.name_key(user)
            sid = room.members.get(key)
            sess = self.relay.sessions.get(sid) if sid is not None else None
            remote = room.remote.get(key) if sess is None and room.remote else None  # another relay's
            seats.append(sess.seat if sess is not None else remote.seat if remote is not None else "")
        return tuple(seats)

    # ------------------------------------------------------------ requests

    def _done(self, sess: Session, request_id: int, code: int = 0, text: str = "") -> None:
        self.relay._send(sess, m.RequestDone(request_id, code, 0, truncate_utf8(text, m.MAX_NOTICE_BYTES)))

    def on_request(
        self, sess: Session, req: m.Hand | m.QueueTake | m.PollOpen | m.PollVote | m.PollClose, now: float
    ) -> None:
        """Every request ends with one REQUEST_DONE and costs a token of the message rate (20.7)."""
        if not sess.classroom:
            self._done(
                sess, req.request_id, ErrorCode.PROTOCOL_VIOLATION, "the classroom needs CAP_CLASSROOM"
            )
            return
        if not self.relay._take_token(sess, now):
            self._done(sess, req.request_id, ErrorCode.RATE_LIMITED, "slow down")
            return
        room = sess.rooms.get(req.room)
        if room is None:
            self._done(sess, req.request_id, ErrorCode.NO_SUCH_ROOM, f"you are not in {req.room}")
            return
        if isinstance(req, m.Hand):
            self._on_hand(sess, room, req, now)
        elif isinstance(req, m.QueueTake):
            self._on_queue_take(sess, room, req, now)
        elif isinstance(req, m.PollOpen):
            self._on_poll_open(sess, room, req, now)
        elif isinstance(req, m.PollVote):
            self._on_poll_vote(sess, room, req)
        else:
            self._on_poll_close(sess, room, req, now)

    # ------------------------------------------------------------ the help queue (20.3)

    def _on_hand(self, sess: Session, room: Room, req: m.Hand, now: float) -> None:
        user = sess.user
        assert user is not None
        now_ms, queue = _ms(now), self.queue(room.name)
        if not may(Act.RAISE_HAND, self._role(sess, room)):
            self._done(sess, req.request_id, ErrorCode.NOT_ALLOWED, f"you cannot raise a hand in {room.name}")
            return
        if req.raise_:
            before = queue.find(user)
            old_question = before.question if before is not None else None
            try:
                item = queue.raise_hand(user, sess.seat, req.question, now_ms)
            except QueueFull:
                text = f"the help queue of {room.name} is full ({m.MAX_QUEUE_ENTRIES}): try again later"
                self._done(sess, req.request_id, ErrorCode.QUEUE_FULL, text)
                return
            if old_question == req.question:
                self._done(sess, req.request_id)  # as it was: no news
                return
            self.store.save_hand(room.name, item)
            position = queue.position(user)
            self._hand_news(
                room, sess, m.Action.HAND_RAISED, user, item.user, position, item.question, now_ms
            )
        else:
            done = queue.remove(user, user, now_ms)
            if done is None:
                self._done(sess, req.request_id)  # not in the queue: nothing to lower
                return
            self._lowered(room, done, user, sess, now_ms)
        self._send_queue(room)
        self._done(sess, req.request_id)

    def _on_queue_take(self, sess: Session, room: Room, req: m.QueueTake, now: float) -> None:
        user = sess.user
        assert user is not None
        now_ms, queue = _ms(now), self.queue(room.name)
        if not may(Act.TAKE_FROM_QUEUE, self._role(sess, room)):
            text = f"only operators of {room.name} can take students from the help queue"
            self._done(sess, req.request_id, ErrorCode.NOT_OPERATOR, text)
            return
        if req.action == m.QUEUE_NEXT:
            item = queue.take_next(user, now_ms)
            if item is None:
                self._done(sess, req.request_id, ErrorCode.NO_SUCH_USER, "nobody is waiting")
                return
            self.store.save_hand(room.name, item)
            student = self.relay.online_by_key.get(item.key)
            self._hand_news(room, student, m.Action.HAND_TAKEN, user, item.user, 0, item.question, now_ms)
        else:
            done = queue.remove(req.user, user, now_ms)
            if done is None:
                self._done(
                    sess, req.request_id, ErrorCode.NO_SUCH_USER, f"{req.user} is not in the help queue"
                )
                return
            self._lowered(room, done, user, self.relay.online_by_key.get(done.item.key), now_ms)
        self._send_queue(room)
        self._done(sess, req.request_id)

    def _lowered(self, room: Room, done: DoneItem, by: str, student: Session | None, now_ms: int) -> None:
        self.store.remove_hand(room.name, done)
        self._hand_news(
            room, student, m.Action.HAND_LOWERED, by, done.item.user, 0, done.item.question, now_ms
        )
        # Everyone waiting behind it moved up: each is told its new place, alone (20.3).
        for place, item in self.queue(room.name).moved_up(done):
            waiting = self.relay.online_by_key.get(item.key)
            self._hand_news(
                room, waiting, m.Action.HAND_RAISED, "", item.user, place, item.question, now_ms, ops=False
            )

    def _hand_news(
        self, room: Room, student: Session | None, action: m.Action, actor: str, target: str, minutes: int,
        value: str, now_ms: int, *, ops: bool = True,
    ) -> None:  # fmt: skip
        """HAND_* news to the student concerned and (`ops`) the room's operators, nobody else (20.3).
        Without `ops` it is the student's own news (a new place), which the log does not need."""
        text = describe(action, actor, target, minutes, value)
        event = m.RoomEvent(room.name, now_ms, action, actor, target, minutes, value, text)
        if ops:
            log.info(_("in %s: %s"), room.name, _escape(text))
        body = encode_message(event)
        to = self._ops(room) if ops else []
        if student is not None and student.classroom and room.name in student.rooms and student not in to:
            to.append(student)
        for sess in to:
            sess.link.send(m.Kind.ROOM_EVENT, body)
            self.relay._dirty.add(sess)

    def _send_queue(self, room: Room, to: list[Session] | None = None) -> None:
        """The whole queue, as QUEUE_ENTRY messages, to the room's operators (or to `to`)."""
        bodies = [encode_message(entry) for entry in self.queue(room.name).entries(room.name)]
        for sess in self._ops(room) if to is None else to:
            for body in bodies:
                sess.link.send(m.Kind.QUEUE_ENTRY, body)
            self.relay._dirty.add(sess)

    # ------------------------------------------------------------ polls (20.4)

    def _on_poll_open(self, sess: Session, room: Room, req: m.PollOpen, now: float) -> None:
        user = sess.user
        assert user is not None
        if not may(Act.OPEN_POLL, self._role(sess, room)):
            self._done(
                sess, req.request_id, ErrorCode.NOT_OPERATOR, f"only operators of {room.name} can open polls"
            )
            return
        now_ms = _ms(now)
        poll = RoomPoll(
            self.store.next_poll_id(room.name), user, req.question, req.options,
            bool(req.flags & m.POLL_ANONYMOUS), now_ms,
        )  # fmt: skip
        # Every POLL of it must fit one frame (20.4): counts and the receiver's own fields included.
        widest = m.Poll(room.name, poll.poll_id, user, req.question, req.options, 0xFF,
                        (0xFFFF_FFFF,) * len(req.options), 0xFFFF_FFFF, 9)  # fmt: skip
        if len(encode_message(widest)) > MAX_FRAME_BODY_BYTES:
            text = "the question and its options are too long together: shorten them"
            self._done(sess, req.request_id, ErrorCode.BAD_MESSAGE, text)
            return
        previous = self.polls.get(room.name)
        if previous is not None:
            self._close(room, previous, now_ms)
        self.polls[room.name] = poll
        self.store.save_poll(room.name, poll)
        log.info(_("%s opened poll #%d in %s: %s"), user, poll.poll_id, room.name, _escape(poll.question))
        self._show_poll(room, poll)
        self._done(sess, req.request_id)

    def _current(self, room: Room, poll_id: int) -> RoomPoll | None:
        poll = self.polls.get(room.name)
        return poll if poll is not None and poll.poll_id == poll_id and not poll.closed else None

    def _on_poll_vote(self, sess: Session, room: Room, req: m.PollVote) -> None:
        user = sess.user
        assert user is not None
        poll = self._current(room, req.poll_id)
        if poll is None or not may(Act.VOTE, self._role(sess, room)):
            self._done(
                sess, req.request_id, ErrorCode.NO_SUCH_POLL, f"poll #{req.poll_id} is closed or unknown"
            )
            return
        try:
            changed = poll.vote(user, req.choice)
        except (PollError, ValueError) as exc:
            self._done(sess, req.request_id, ErrorCode.BAD_MESSAGE, str(exc))
            return
        if changed:
            self.store.save_vote(room.name, poll.poll_id, user, req.choice)
            self._polls_due.add(room.name)
        self._done(sess, req.request_id)

    def _on_poll_close(self, sess: Session, room: Room, req: m.PollClose, now: float) -> None:
        if not may(Act.OPEN_POLL, self._role(sess, room)):
            self._done(
                sess, req.request_id, ErrorCode.NOT_OPERATOR, f"only operators of {room.name} can close polls"
            )
            return
        poll = self._current(room, req.poll_id)
        if poll is None:
            self._done(
                sess, req.request_id, ErrorCode.NO_SUCH_POLL, f"poll #{req.poll_id} is closed or unknown"
            )
            return
        self._close(room, poll, _ms(now))
        self._done(sess, req.request_id)

    def _close(self, room: Room, poll: RoomPoll, now_ms: int) -> None:
        poll.close(now_ms)
        self.store.save_poll(room.name, poll)
        del self.polls[room.name]
        self._polls_due.discard(room.name)
        log.info(_("poll #%d in %s closed: %s"), poll.poll_id, room.name, poll.counts())
        self._show_poll(room, poll)

    def _poll_for(self, room: Room, poll: RoomPoll, sess: Session) -> m.Poll:
        """POLL as `sess` may see it, with as many ballots as fit one frame."""
        assert sess.user is not None
        operator = may(Act.SEE_VOTES, self._role(sess, room))
        view = poll.view(room.name, sess.user, operator=operator)
        if view.ballots and len(encode_message(view)) > MAX_FRAME_BODY_BYTES:
            ballots = list(view.ballots)
            while ballots and len(encode_message(view)) > MAX_FRAME_BODY_BYTES:
                ballots = ballots[: len(ballots) * 3 // 4]
                view.ballots = tuple(ballots)
        return view

    def _show_poll(self, room: Room, poll: RoomPoll, to: list[Session] | None = None) -> None:
        for sess in self._members(room) if to is None else to:
            self.relay._send(sess, self._poll_for(room, poll, sess))

    def send_due_polls(self) -> None:
        """POLL to the operators of each room whose open poll got votes since the last flush: once
        per flush, however many votes came (20.4)."""
        due, self._polls_due = self._polls_due, set()
        for name in due:
            room, poll = self.relay.rooms.get(name), self.polls.get(name)
            if room is not None and poll is not None:
                self._show_poll(room, poll, self._ops(room))

    # ------------------------------------------------------------ entering a room

    def on_enter(self, sess: Session, room: Room) -> None:
        """A session joined `room` or logged in to it: an operator gets the queue, everyone the open poll."""
        if not sess.classroom or sess.user is None:
            return
        if may(Act.SEE_QUEUE, self._role(sess, room)):
            self._send_queue(room, [sess])
        poll = self.polls.get(room.name)
        if poll is not None:
            self._show_poll(room, poll, [sess])

    # ------------------------------------------------------------ quiet mode and sessions (20.5, 20.6)

    def on_set_room(self, sess: Session, room: Room, req: m.SetRoom, now: float) -> None:
        """ROOM_SET QUIET and SESSION (the other settings are room_requests.py's)."""
        user = sess.user
        assert user is not None
        now_ms = _ms(now)
        if req.setting == m.Setting.SESSION:
            if not may(Act.START_SESSION, self._role(sess, room)):
                text = f"only operators of {room.name} can start a class session"
                self.relay.room_requests._done(sess, req.request_id, ErrorCode.NOT_OPERATOR, text)
                return
            self.store.start_session(room.name, now_ms, room.next_seq - 1)
            self._news(room, m.Action.SESSION_STARTED, user, 0, "", now_ms)
            self.relay.room_requests._done(sess, req.request_id)
            return
        if not may(Act.SET_QUIET, self._role(sess, room)):
            text = f"only operators of {room.name} can turn quiet mode on or off"
            self.relay.room_requests._done(sess, req.request_id, ErrorCode.NOT_OPERATOR, text)
            return
        until = quiet_until(req.value, now_ms)
        if until is None:
            text = f"quiet mode is a number of minutes from 1 to {m.MAX_QUIET_MINUTES}, or 'off'"
            self.relay.room_requests._done(sess, req.request_id, ErrorCode.BAD_MESSAGE, text)
            return
        if until == 0 and not room.quiet(now_ms):
            self.relay.room_requests._done(sess, req.request_id)  # off already: no news
            return
        self._set_quiet(room, until, user, now_ms)
        self.relay.room_requests._done(sess, req.request_id)

    def _set_quiet(self, room: Room, until_ms: int, actor: str, now_ms: int) -> None:
        room.quiet_until_ms = until_ms
        self.store.set_quiet(room.name, until_ms)
        if until_ms:
            heapq.heappush(self._quiet_timers, (until_ms, room.name))
        minutes = -(-(until_ms - now_ms) // 60_000) if until_ms else 0
        self._news(room, m.Action.QUIET_SET, actor, minutes, "on" if until_ms else "off", now_ms)
        self.relay.room_requests._send_states(room, now_ms)

    def _news(self, room: Room, action: m.Action, actor: str, minutes: int, value: str, now_ms: int) -> None:
        """Room-wide news of this section: ROOM_EVENT to CAP_CLASSROOM members, NOTICE to the others
        (quiet mode concerns them too: their messages go to the operators only)."""
        text = describe(action, actor, "", minutes, value)
        log.info(_("[bold yellow]%s[/] in %s: %s"), _escape(actor or "server"), room.name, _escape(text))
        event = encode_message(m.RoomEvent(room.name, now_ms, action, actor, "", minutes, value, text))
        notice = encode_message(
            m.Notice(ErrorCode.ROOM_NEWS, truncate_utf8(f"#{room.name}: {text}", m.MAX_NOTICE_BYTES))
        )
        for sid in room.members.values():
            sess = self.relay.sessions.get(sid)
            if sess is None:
                continue
            if sess.classroom:
                sess.link.send(m.Kind.ROOM_EVENT, event)
            else:
                sess.link.send(m.Kind.NOTICE, notice)
            self.relay._dirty.add(sess)

    def next_quiet_end(self) -> float | None:
        return self._quiet_timers[0][0] / 1000 if self._quiet_timers else None

    def end_quiet(self, now: float) -> None:
        """Quiet modes whose end has come end by themselves (20.5); a stale timer entry (quiet mode
        changed since) is skipped."""
        now_ms = _ms(now)
        while self._quiet_timers and self._quiet_timers[0][0] <= now_ms:
            until, name = heapq.heappop(self._quiet_timers)
            room = self.relay.rooms.get(name)
            if room is None or room.quiet_until_ms != until:
                continue
            self._set_quiet(room, 0, "", now_ms)

    # ------------------------------------------------------------ messages in a quiet room (20.5)

    def diverts(self, sess: Session, room: Room, now: float) -> bool:
        """Whether a room message from `sess` goes to the operators only (the room is quiet)."""
        return room.quiet(_ms(now)) and not may(Act.SPEAK_WHEN_QUIET, self._role(sess, room))

    def to_ops(self, sess: Session, room: Room, message: m.Say | LongChat, now: float) -> None:
        """A student's line in a quiet room: PRIVATE(FLAG_TO_OPS, `to` = the room) to every operator
        online in it, ACCEPTED(room, seq 0) to the sender; nothing is stored in the room's history."""
        user = sess.user
        assert user is not None
        ts = _ms(now)
        flags = (message.flags & m.FLAG_ACTION) | m.FLAG_TO_OPS
        for op in self._ops(room, classroom_only=False):
            if op is sess:
                continue
            for frame in _private_frames(user, room.name, ts, message.text, flags, op.caps):
                self.relay._send(op, frame)
        self.relay._send(sess, m.Accepted(message.msg_id, room.name, 0, ts))
        self.relay._remember_id((m.name_key(user), message.msg_id), (room.name, 0, ts))
        log.info(_("%s -> operators of %s (quiet mode)"), user, room.name)

    def whisper_refusal(self, sess: Session, to: str, now: float) -> str | None:
        """REJECTED(QUIET)'s text if `sess` may not message `to` now: it is a student in a quiet room
        and `to` is not an operator or admin of that room (20.5); else None."""
        now_ms = _ms(now)
        to_key = m.name_key(to)
        target = self.relay.online_by_key.get(to_key)
        for room in sess.rooms.values():
            if not room.quiet(now_ms) or may(Act.SPEAK_WHEN_QUIET, self._role(sess, room)):
                continue
            admin = target.admin if target is not None else self.relay.store.is_admin(to)
            guest = target.guest if target is not None else False
            if not may(Act.BE_MESSAGED_WHEN_QUIET, room.role_of(to_key, admin=admin, guest=guest)):
                return f"quiet mode in {room.name}: only the teachers can be messaged"
        return None
