"""Private messages in the relay (docs/protocol.md 8.6 and 16.2): to a user online in any room, or
held in the database for one who is offline and delivered at its next login.

Part of `Relay` (relay.py): it works on the relay's state, which it reaches as `self.relay`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..i18n import _
from ..protocol import messages as m
from ..protocol.errors import ErrorCode
from ..protocol.text import long_preview, over_limit, split_parts, truncate_utf8
from ..protocol.wire import encode_message
from .cluster.exchange import OutgoingPrivate
from .formatting import _ms

if TYPE_CHECKING:
    from .relay import LongChat, Relay, Session

log = logging.getLogger("labchat.server.relay")

#: Private messages held for one offline recipient (docs/protocol.md section 16.2): a mailbox for
#: the absent, not an archive; more are refused so that nobody can fill the disk through one name.
MAX_HELD_PER_USER = 100
#: Held private messages older than this are deleted unread.
HELD_TTL_S = 7 * 24 * 3600
#: Recipients for whom "X is offline" notices are remembered before that memory starts over.
OFFLINE_NOTIFIED_RECIPIENTS = 10_000


class PrivateMessages:
    """WHISPER and held private messages; see the module docstring."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def _whisper(self, sess: Session, message: m.Whisper | LongChat, now: float) -> None:
        assert sess.user is not None
        key = (m.name_key(sess.user), message.msg_id)
        if (known := self.relay._recent_ids.get(key)) is not None:
            self.relay._send(sess, m.Accepted(message.msg_id, "", 0, known[2]))  # a resend: relay once
            return
        refusal = self.relay.classroom.whisper_refusal(sess, message.to, now)
        if refusal is not None:  # quiet mode (20.5): students message the teachers only
            self.relay._send(sess, m.Rejected(message.msg_id, ErrorCode.QUIET, 0, refusal))
            return
        target = self._online_session(message.to)
        if target is None and self.relay.cluster is not None:
            self._to_cluster(sess, message, now)
            return
        if target is None:
            self._hold_whisper(sess, message, now)
            return
        assert target.user is not None
        ts = _ms(now)
        flags = message.flags & m.FLAG_ACTION
        for private in _private_frames(sess.user, target.user, ts, message.text, flags, target.caps):
            self.relay._send(target, private)
        self.relay._send(sess, m.Accepted(message.msg_id, "", 0, ts))
        self.relay._remember_id(key, ("", 0, ts))
        log.info(_("private message %s -> %s"), sess.user, target.user)
        away = target.away
        if away is not None and target is not sess and key[0] not in away.notified:
            away.notified.add(key[0])
            because = f": {away.reason}" if away.reason else ""
            text = truncate_utf8(f"{target.user} is away{because}", m.MAX_NOTICE_BYTES)
            self.relay._send(sess, m.Notice(ErrorCode.USER_AWAY, text))

    # ------------------------------------------------------------ cluster mode (cluster/privates.py)

    def _to_cluster(self, sess: Session, message: m.Whisper | LongChat, now: float) -> None:
        """A private message for a user not on this relay: the relay holding the user delivers it,
        or the cluster holds it; the sender hears ACCEPTED from `remote_done` once either is done."""
        assert sess.user is not None and self.relay.cluster is not None
        # A name with no account here may have signed up a moment ago on another relay: the
        # cluster side looks it up before it holds the message, and answers "unknown" if not (22.4).
        in_flight = (m.name_key(sess.user), message.msg_id)
        if in_flight in self.relay.cluster.privates_in_flight:
            return  # a resend of one on its way: its answer (or the next resend) confirms it
        self.relay.cluster.privates_in_flight.add(in_flight)
        self.relay.cluster.send_private(OutgoingPrivate(
            sess.sid, sess.user, message.to, _ms(now), message.text, message.flags & m.FLAG_ACTION,
            message.msg_id,
        ))  # fmt: skip

    def remote_done(self, private: OutgoingPrivate, outcome: str, detail: str, now: float) -> None:
        """What became of a private message sent through the cluster. `outcome`: "delivered"
        (`detail`: the recipient's away reason, "" if not away), "held" (`detail`: the recipient's
        name), "full" (held too many already), "unavailable" (NATS did not answer in time), "unknown"
        (online nowhere and no account anywhere in the cluster)."""
        self.relay._now = now
        msg_id, sender_key = private.msg_id, m.name_key(private.sender)
        if self.relay.cluster is not None:
            self.relay.cluster.privates_in_flight.discard((sender_key, msg_id))
        if outcome in ("delivered", "held"):
            self.relay._remember_id((sender_key, msg_id), ("", 0, private.ts_ms))
        sess = self.relay.sessions.get(private.sender_sid)
        if sess is None or sess.user is None or m.name_key(sess.user) != sender_key:
            return  # the sender left: its client resends after its next login, dedup finds it then
        if outcome == "unavailable":
            # 22.6: kept and sent again by the client (RATE_LIMITED's rule, which old clients honour).
            code = ErrorCode.CLUSTER_UNAVAILABLE if sess.caps & m.CAP_FAILOVER else ErrorCode.RATE_LIMITED
            text = "messages cannot be delivered now: the cluster is unreachable; retrying"
            self.relay._send(sess, m.Rejected(msg_id, code, 1000, text))
            return
        if outcome == "unknown":
            text = f"{private.to} is not online"
            self.relay._send(sess, m.Rejected(msg_id, ErrorCode.NO_SUCH_USER, 0, text))
            return
        if outcome == "full":
            text = f"{detail} is offline and has too many messages waiting"
            self.relay._send(sess, m.Rejected(msg_id, ErrorCode.RECIPIENT_OFFLINE, 0, text))
            return
        self.relay._send(sess, m.Accepted(msg_id, "", 0, private.ts_ms))
        if outcome == "delivered":
            log.info(_("private message %s -> %s (on another relay)"), sess.user, private.to)
            if detail:
                text = truncate_utf8(f"{private.to} is away: {detail}", m.MAX_NOTICE_BYTES)
                self.relay._send(sess, m.Notice(ErrorCode.USER_AWAY, text))
            return
        log.info(_("private message %s -> %s held: %s is offline"), sess.user, detail, detail)
        if len(self.relay._offline_notified) >= OFFLINE_NOTIFIED_RECIPIENTS:
            self.relay._offline_notified.clear()
        told = self.relay._offline_notified.setdefault(m.name_key(detail), set())
        if sender_key not in told:
            told.add(sender_key)
            self.relay._send(sess, m.Notice(
                ErrorCode.RECIPIENT_OFFLINE, f"{detail} is offline: will be delivered when {detail} returns",
            ))  # fmt: skip

    def deliver_remote(self, sender: str, to: str, ts_ms: int, text: str, flags: int) -> tuple[bool, str]:
        """A private message from a user on another relay for a user here: (delivered, the away
        reason to tell the sender, or "" when not away or told already in this away period)."""
        target = self._online_session(to)
        if target is None or target.user is None:
            return False, ""
        for private in _private_frames(sender, target.user, ts_ms, text, flags & m.FLAG_ACTION, target.caps):
            self.relay._send(target, private)
        away, sender_key = target.away, m.name_key(sender)
        if away is not None and sender_key not in away.notified:
            away.notified.add(sender_key)
            return True, away.reason or "away"
        return True, ""

    def deliver_cluster_held(self, user: str, now: float) -> None:
        """Held messages of `user` moved from the cluster into this relay's store (cluster/privates.py):
        delivered now if the user is still here, as at login, without resending those in flight."""
        sess = self._online_session(user)
        if sess is None or sess.user is None:
            return
        in_flight = {held_id for _seq, held_id in sess.held_frames or ()}
        held = self.relay.store.held_for(sess.user, MAX_HELD_PER_USER, _ms(now) - HELD_TTL_S * 1000)
        frames = list(sess.held_frames or ())
        for h in held:
            if h.id in in_flight:
                continue
            flags = (h.flags & m.FLAG_ACTION) | m.FLAG_HELD
            for private in _private_frames(h.sender, sess.user, h.ts_ms, h.text, flags, sess.caps):
                frames.append((sess.link.send(private.KIND, encode_message(private)), h.id))
        sess.held_frames = frames or None
        self.relay._dirty.add(sess)

    def _online_session(self, name: str) -> Session | None:
        """The live, logged-in session of `name` (in any room), or None: one dictionary look-up."""
        return self.relay.online_by_key.get(m.name_key(name))

    def _hold_whisper(self, sess: Session, message: m.Whisper | LongChat, now: float) -> None:
        """A WHISPER to an account that is not online: keep it for its next login (section 16.2)."""
        assert sess.user is not None
        account = self.relay.store.get_account(message.to)
        if account is None:
            self.relay._send(
                sess,
                m.Rejected(message.msg_id, ErrorCode.NO_SUCH_USER, 0, f"{message.to} is not online"),
            )
            return
        ts = _ms(now)
        self.relay.store.expire_held(ts - HELD_TTL_S * 1000)
        held_ts = self.relay.store.find_held(sess.user, message.msg_id)
        if held_ts is None:
            if self.relay.store.held_count(account.name) >= MAX_HELD_PER_USER:
                self.relay._send(sess, m.Rejected(
                    message.msg_id, ErrorCode.RECIPIENT_OFFLINE, 0,
                    f"{account.name} is offline and has too many messages waiting",
                ))  # fmt: skip
                return
            held_ts = self.relay.store.hold_private(
                sess.user, account.name, ts, message.text, message.flags & m.FLAG_ACTION, message.msg_id
            )  # committed: the ACCEPTED below is a promise that survives a crash
        self.relay._send(sess, m.Accepted(message.msg_id, "", 0, held_ts))
        self.relay._remember_id((m.name_key(sess.user), message.msg_id), ("", 0, held_ts))
        log.info(_("private message %s -> %s held: %s is offline"), sess.user, account.name, account.name)
        if len(self.relay._offline_notified) >= OFFLINE_NOTIFIED_RECIPIENTS:
            self.relay._offline_notified.clear()  # at worst, a sender is told twice
        told = self.relay._offline_notified.setdefault(account.key, set())
        if m.name_key(sess.user) not in told:
            told.add(m.name_key(sess.user))
            self.relay._send(sess, m.Notice(
                ErrorCode.RECIPIENT_OFFLINE,
                f"{account.name} is offline: will be delivered when {account.name} returns",
            ))  # fmt: skip

    def _deliver_held(self, sess: Session, now: float) -> None:
        """After a login: every private message held for this user, oldest first, flagged HELD with
        its original time. Rows are deleted only once the link has acknowledged them (`_settle_held`)."""
        assert sess.user is not None
        self.relay._offline_notified.pop(m.name_key(sess.user), None)
        # Expired rows are left for the next hold to delete (it writes anyway): a login only reads.
        held = self.relay.store.held_for(sess.user, MAX_HELD_PER_USER, _ms(now) - HELD_TTL_S * 1000)
        if not held:
            return
        frames = []
        for h in held:
            flags = (h.flags & m.FLAG_ACTION) | m.FLAG_HELD
            for private in _private_frames(h.sender, sess.user, h.ts_ms, h.text, flags, sess.caps):
                # A long one is several frames: its row goes once all of them are acknowledged.
                frames.append((sess.link.send(private.KIND, encode_message(private)), h.id))
        sess.held_frames = frames
        self.relay._dirty.add(sess)
        log.info(_("%s: %d held private message(s) delivered"), sess.user, len(held))

    def _settle_held(self, sess: Session) -> None:
        """Delete the held messages whose frames the recipient has acknowledged."""
        assert sess.held_frames is not None
        waiting = {held_id for seq, held_id in sess.held_frames if not sess.link.acked(seq)}
        done = list(dict.fromkeys(held_id for _frame, held_id in sess.held_frames if held_id not in waiting))
        if not done:
            return
        self.relay.store.delete_held(done)
        settled = set(done)
        rest = [pair for pair in sess.held_frames if pair[1] not in settled]
        sess.held_frames = rest or None


def _private_frames(sender: str, to: str, ts_ms: int, text: str, flags: int, caps: int) -> list[m.Message]:
    """A private message as its recipient can read it: one PRIVATE, the parts of a long one, or the
    preview of a long one for a client that does not read parts (docs/protocol.md section 15.3)."""
    if not over_limit(text):
        return [m.Private(sender, to, ts_ms, text, flags)]
    if caps & m.CAP_LONG_MESSAGES:
        pieces = split_parts(text)
        count = len(pieces)
        return [m.PrivatePart(sender, to, ts_ms, flags, i, count, piece) for i, piece in enumerate(pieces)]
    return [m.Private(sender, to, ts_ms, long_preview(text), flags)]
