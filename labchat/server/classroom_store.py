"""The classroom's durable state (docs/protocol.md 20.3-20.6) in the server's SQLite file: help
queues with their raise, take and done times, polls and their votes, quiet mode and class sessions.

The tables are created by the store's migration 7 (store.py); this module reads and writes them
through the store's own connection, so that everything stays in one file and one writer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..i18n import _
from ..protocol import messages as m
from .classroom_state import DoneItem, QueueItem, RoomPoll
from .store import Store


@dataclass(frozen=True, slots=True)
class ClassSettings:
    """A room's quiet mode and the start of its current class session (0: none)."""

    room: str
    quiet_until_ms: int = 0
    session_ms: int = 0
    session_seq: int = 0


@dataclass(frozen=True, slots=True)
class LoggedHand:
    """A hand from the queue's log, for transcripts: raised, maybe taken, and done."""

    room: str
    user: str
    seat: str
    question: str
    raised_ms: int
    taken_by: str
    taken_ms: int
    done_ms: int
    done_by: str


class ClassroomStore:
    """Section 20's tables, on `store`'s connection."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------ the help queue

    def load_queues(self) -> dict[str, list[QueueItem]]:
        rows = self.store._read(
            "SELECT room, user, seat, question, raised_ms, taken_by, taken_ms FROM hand_queue"
            " ORDER BY room, position"
        )
        out: dict[str, list[QueueItem]] = {}
        for room, user, seat, question, raised, taken_by, taken_ms in rows:
            if not isinstance(room, str) or not isinstance(user, str) or not isinstance(raised, int):
                skipped = _("skipped a help-queue row in {path}: {room!r} {user!r}")
                self.store.warnings.append(skipped.format(path=self.store.path, room=room, user=user))
                continue
            item = QueueItem(user, str(seat), str(question), raised, str(taken_by), int(taken_ms or 0))  # type: ignore[call-overload]
            out.setdefault(room, []).append(item)
        return out

    def save_hand(self, room: str, it: QueueItem) -> None:
        """A hand raised (at the end of the queue) or changed where it stands: one row, not the
        whole queue (a class raising hands together costs one small write each)."""
        self.store._write([(
            "INSERT INTO hand_queue (room, account_key, user, seat, question, raised_ms, taken_by, taken_ms,"
            " position) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
            " (SELECT coalesce(max(position), -1) + 1 FROM hand_queue WHERE room = ?))"
            " ON CONFLICT (room, account_key) DO UPDATE SET seat = excluded.seat,"
            " question = excluded.question, taken_by = excluded.taken_by, taken_ms = excluded.taken_ms",
            (room, it.key, it.user, it.seat, it.question, it.raised_ms, it.taken_by, it.taken_ms, room),
        )])  # fmt: skip

    def remove_hand(self, room: str, done: DoneItem) -> None:
        """A hand went down: out of the queue and into the log, in one transaction."""
        it = done.item
        self.store._write([
            ("DELETE FROM hand_queue WHERE room = ? AND account_key = ?", (room, it.key)),
            (
                "INSERT INTO hand_log (room, user, seat, question, raised_ms, taken_by, taken_ms, done_ms,"
                " done_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (room, it.user, it.seat, it.question, it.raised_ms, it.taken_by, it.taken_ms, done.done_ms,
                 done.done_by),
            ),
        ])  # fmt: skip

    def hand_log(self, room: str, since_ms: int = 0) -> list[LoggedHand]:
        """Hands of `room` done since `since_ms`, then those still up (done_ms 0), in raise order."""
        done = self.store._read(
            "SELECT room, user, seat, question, raised_ms, taken_by, taken_ms, done_ms, done_by FROM hand_log"
            " WHERE room = ? AND done_ms >= ? ORDER BY raised_ms, id",
            (room, since_ms),
        )
        up = self.store._read(
            "SELECT room, user, seat, question, raised_ms, taken_by, taken_ms, 0, '' FROM hand_queue"
            " WHERE room = ? ORDER BY position",
            (room,),
        )
        return [LoggedHand(*row) for row in [*done, *up]]  # type: ignore[arg-type]

    # ------------------------------------------------------------ polls

    def next_poll_id(self, room: str) -> int:
        rows = self.store._read("SELECT max(poll_id) FROM polls WHERE room = ?", (room,))
        last = rows[0][0] if rows else None
        return int(last) + 1 if isinstance(last, int) else 1

    def save_poll(self, room: str, poll: RoomPoll) -> None:
        self.store._write([(
            "INSERT INTO polls (room, poll_id, by_name, question, options, anonymous, opened_ms, closed_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (room, poll_id) DO UPDATE SET"
            " closed_ms = excluded.closed_ms",
            (room, poll.poll_id, poll.by, poll.question, json.dumps(list(poll.options)), int(poll.anonymous),
             poll.opened_ms, poll.closed_ms),
        )])  # fmt: skip

    def save_vote(self, room: str, poll_id: int, user: str, choice: int) -> None:
        self.store._write([(
            "INSERT INTO poll_votes (room, poll_id, account_key, user, choice) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (room, poll_id, account_key) DO UPDATE SET choice = excluded.choice",
            (room, poll_id, m.name_key(user), user, choice),
        )])  # fmt: skip

    def load_polls(
        self, room: str | None = None, *, open_only: bool = False, since_ms: int = 0
    ) -> list[tuple[str, RoomPoll]]:
        """Polls with their votes (of one room, or every room), in the order they were opened."""
        sql = (
            "SELECT room, poll_id, by_name, question, options, anonymous, opened_ms, closed_ms FROM polls"
            " WHERE opened_ms >= ?"
        )
        params: list[object] = [since_ms]
        if room is not None:
            sql += " AND room = ?"
            params.append(room)
        if open_only:
            sql += " AND closed_ms = 0"
        out: list[tuple[str, RoomPoll]] = []
        for name, poll_id, by, question, options, anonymous, opened, closed in self.store._read(
            sql + " ORDER BY opened_ms, poll_id", tuple(params)
        ):
            try:
                texts = tuple(str(o) for o in json.loads(str(options)))
                poll = RoomPoll(int(poll_id), str(by), str(question), texts, bool(anonymous), int(opened),  # type: ignore[call-overload]
                                int(closed))  # type: ignore[call-overload]  # fmt: skip
            except (ValueError, TypeError):
                skipped = _("skipped a poll row in {path}: {room!r} {poll!r}")
                self.store.warnings.append(skipped.format(path=self.store.path, room=name, poll=poll_id))
                continue
            for user, choice in self.store._read(
                "SELECT user, choice FROM poll_votes WHERE room = ? AND poll_id = ? ORDER BY rowid",
                (name, poll.poll_id),
            ):
                if isinstance(choice, int) and 1 <= choice <= len(texts):
                    poll.votes[m.name_key(str(user))] = (str(user), choice)
            out.append((str(name), poll))
        return out

    # ------------------------------------------------------------ quiet mode and sessions

    def load_settings(self) -> list[ClassSettings]:
        rows = self.store._read("SELECT room, quiet_until_ms, session_ms, session_seq FROM class_settings")
        return [ClassSettings(str(r[0]), int(r[1] or 0), int(r[2] or 0), int(r[3] or 0)) for r in rows]  # type: ignore[call-overload]

    def settings(self, room: str) -> ClassSettings:
        rows = self.store._read(
            "SELECT room, quiet_until_ms, session_ms, session_seq FROM class_settings WHERE room = ?", (room,)
        )
        if not rows:
            return ClassSettings(room)
        r = rows[0]
        return ClassSettings(str(r[0]), int(r[1] or 0), int(r[2] or 0), int(r[3] or 0))  # type: ignore[call-overload]

    def set_quiet(self, room: str, until_ms: int) -> None:
        self.store._write([(
            "INSERT INTO class_settings (room, quiet_until_ms) VALUES (?, ?) ON CONFLICT (room) DO UPDATE"
            " SET quiet_until_ms = excluded.quiet_until_ms",
            (room, until_ms),
        )])  # fmt: skip

    def start_session(self, room: str, now_ms: int, seq: int) -> None:
        self.store._write([(
            "INSERT INTO class_settings (room, session_ms, session_seq) VALUES (?, ?, ?) ON CONFLICT (room)"
            " DO UPDATE SET session_ms = excluded.session_ms, session_seq = excluded.session_seq",
            (room, now_ms, seq),
        )])  # fmt: skip
