"""Roles, moderation, announcements and timed sanctions in the relay (docs/protocol.md 18.7-18.12),
including restarts of the relay on the same database (kill -9: nothing but the database survives)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from labchat.protocol import messages as m
from labchat.protocol.errors import ErrorCode

from ..protocol.sim import SimNet
from .test_rooms import Peer, modes_of

A = m.Action


def classroom(tmp_path: Path, *names: str) -> tuple[SimNet, list[Peer]]:
    """`names[0]` creates cs101 (its operator); the others join it."""
    net = SimNet(tmp_path)
    peers = [Peer(net, name) for name in names]
    for peer in peers:
        assert peer.request(m.JoinRoom, "cs101").code == 0
    return net, peers


def restart(net: SimNet) -> None:
    """kill -9 and start again on the same database; the old peers' sessions are gone with it."""
    net.crash_relay()
    net.__dict__.get("peers", {}).clear()
    net.start_relay()


def test_rules_are_enforced_in_order(tmp_path: Path) -> None:
    _net, (teacher, bob) = classroom(tmp_path, "teacher", "bob")
    done = bob.request(m.Moderate, "cs101", A.MUTE, "teacher", 5, "")
    assert done.code == ErrorCode.NOT_OPERATOR and done.text == "only operators of cs101 can mute"
    assert teacher.request(m.Moderate, "art", A.KICK, "bob", 0, "").code == ErrorCode.NO_SUCH_ROOM
    assert teacher.request(m.Moderate, "cs101", A.MUTE, "nobody", 0, "").code == ErrorCode.NO_SUCH_USER
    assert teacher.request(m.Moderate, "cs101", A.KICK, "teacher", 0, "").code == ErrorCode.NOT_ALLOWED
    assert bob.request(m.SetRoom, "cs101", m.Setting.TOPIC, "mine").code == ErrorCode.NOT_OPERATOR  # locked
    assert teacher.request(m.SetRoom, "cs101", m.Setting.TOPIC_LOCK, "maybe").code == ErrorCode.BAD_MESSAGE
    assert teacher.request(m.SetRoom, "cs101", m.Setting.TOPIC_LOCK, "off").code == 0
    assert bob.request(m.SetRoom, "cs101", m.Setting.TOPIC, "Lab 3").code == 0
    assert teacher.last(m.RoomState).topic == "Lab 3"
    event = teacher.last(m.RoomEvent)
    assert (event.action, event.actor, event.value) == (A.TOPIC_SET, "bob", "Lab 3")
    assert event.text == "bob set the topic: Lab 3"


def test_timed_mute_refuses_messages_then_ends_by_itself(tmp_path: Path) -> None:
    net, (teacher, bob, cid) = classroom(tmp_path, "teacher", "bob", "cid")
    assert teacher.request(m.Moderate, "cs101", A.MUTE, "bob", 10, "spam").code == 0
    news = cid.last(m.RoomEvent)
    assert (news.action, news.actor, news.target, news.minutes) == (A.MUTE, "teacher", "bob", 10)
    assert news.text == "bob was muted for 10 min by teacher: spam" and bob.last(m.RoomEvent) == news
    assert bob.last(m.RoomState).muted_until_ms == int(net.now * 1000) + 600_000
    assert bob.last(m.RoomState).you & m.MEMBER_MUTED
    bob.send(m.Say(41, "cs101", "let me talk"))
    rejected = bob.last(m.Rejected)
    assert (rejected.msg_id, rejected.code) == (41, ErrorCode.MUTED)
    assert rejected.text == "you are muted in cs101 for 10 more min"
    assert not [x for x in cid.of(m.RoomMessage) if x.text == "let me talk"]
    bob.send(m.Say(42, "lobby", "other rooms are fine"))
    assert bob.last(m.Accepted).msg_id == 42
    bob.send(m.Whisper(43, "cid", "and privates"))
    assert cid.last(m.Private).text == "and privates"
    bob.request(m.PartRoom, "cs101", "")  # rejoining does not shake off a mute
    bob.request(m.JoinRoom, "cs101")
    assert modes_of(bob.last(m.Presence))["bob"] & m.MEMBER_MUTED
    bob.advance(9 * 60)
    assert not [e for e in cid.of(m.RoomEvent) if e.action == A.MUTE_ENDED]
    bob.advance(61)
    ended = cid.last(m.RoomEvent)
    assert (ended.action, ended.target, ended.text) == (A.MUTE_ENDED, "bob", "bob's mute ended")
    assert bob.last(m.RoomState).muted_until_ms == 0
    bob.send(m.Say(44, "cs101", "free"))
    assert cid.last(m.RoomMessage).text == "free"


def test_a_mute_survives_kill_9_and_ends_on_time_after_the_restart(tmp_path: Path) -> None:
    net, (teacher, bob) = classroom(tmp_path, "teacher", "bob")
    assert teacher.request(m.Moderate, "cs101", A.MUTE, "bob", 5, "").code == 0
    muted_until = bob.last(m.RoomState).muted_until_ms
    restart(net)
    net.now += 60
    teacher, bob = Peer(net, "teacher"), Peer(net, "bob")
    state = [s for s in bob.of(m.RoomState) if s.room == "cs101"][-1]
    assert state.muted_until_ms == muted_until
    bob.send(m.Say(7, "cs101", "still muted?"))
    assert bob.last(m.Rejected).code == ErrorCode.MUTED
    bob.advance(4 * 60 + 1)
    assert [e.text for e in teacher.of(m.RoomEvent)] == ["bob's mute ended"]
    bob.send(m.Say(8, "cs101", "yes, over"))
    assert teacher.last(m.RoomMessage).text == "yes, over"


def test_kick_and_timed_ban_across_a_restart(tmp_path: Path) -> None:
    net, (teacher, bob, cid) = classroom(tmp_path, "teacher", "bob", "cid")
    assert teacher.request(m.Moderate, "cs101", A.KICK, "bob", 0, "noise").code == 0
    assert bob.last(m.RoomLeft) == m.RoomLeft("cs101", ErrorCode.KICKED, "teacher", "noise", 0)
    assert [(x.user, x.reason) for x in cid.of(m.Left)] == [("bob", "kicked by teacher")]
    assert cid.last(m.RoomEvent).text == "bob was kicked by teacher: noise"
    assert bob.request(m.JoinRoom, "cs101").code == 0  # a kick is not a ban
    assert teacher.request(m.Moderate, "cs101", A.BAN, "bob", 60, "again").code == 0
    left = bob.last(m.RoomLeft)
    assert (left.code, left.until_ms) == (ErrorCode.BANNED, int(net.now * 1000) + 3_600_000)
    done = bob.request(m.JoinRoom, "cs101")
    assert done.code == ErrorCode.BANNED and done.text == "you are banned from cs101 for 60 more min"
    assert net.relay is not None and net.relay.store.memberships_of("bob") == ["lobby"]
    restart(net)
    net.now += 30 * 60
    teacher, bob = Peer(net, "teacher"), Peer(net, "bob")
    assert bob.request(m.JoinRoom, "cs101").code == ErrorCode.BANNED
    bob.advance(30 * 60 + 1)
    ended = teacher.last(m.RoomEvent)
    assert (ended.action, ended.target) == (A.BAN_ENDED, "bob")
    assert bob.request(m.JoinRoom, "cs101").code == 0


def test_a_ban_that_ended_while_the_server_was_down_ends_at_start(tmp_path: Path) -> None:
    net, (teacher, bob) = classroom(tmp_path, "teacher", "bob")
    assert teacher.request(m.Moderate, "cs101", A.BAN, "bob", 1, "").code == 0
    restart(net)
    net.now += 3600
    assert net.relay is not None
    net.relay.handle_timer(net.now)
    assert net.relay.store.load_sanctions() == []
    bob = Peer(net, "bob")
    assert bob.request(m.JoinRoom, "cs101").code == 0


def test_moderated_room_voice_and_op_roles(tmp_path: Path) -> None:
    _net, (teacher, bob, cid) = classroom(tmp_path, "teacher", "bob", "cid")
    assert teacher.request(m.SetRoom, "cs101", m.Setting.MODERATED, "on").code == 0
    assert cid.last(m.RoomState).modes & m.ROOM_MODERATED
    assert cid.last(m.RoomEvent).text == "teacher turned moderation on"
    assert teacher.request(m.SetRoom, "cs101", m.Setting.MODERATED, "on").code == 0  # no news
    assert [e.action for e in cid.of(m.RoomEvent)] == [A.MODERATED_SET]
    bob.send(m.Say(1, "cs101", "hello?"))
    assert (bob.last(m.Rejected).code, bob.last(m.Rejected).msg_id) == (ErrorCode.MODERATED, 1)
    assert teacher.request(m.Moderate, "cs101", A.VOICE, "bob", 0, "").code == 0
    assert bob.last(m.RoomState).you == m.MEMBER_VOICE
    bob.send(m.Say(2, "cs101", "voiced now"))
    assert cid.last(m.RoomMessage).text == "voiced now"
    assert teacher.request(m.Moderate, "cs101", A.OP, "cid", 0, "").code == 0
    assert cid.last(m.RoomEvent).text == "teacher gave cid operator"
    assert cid.request(m.Moderate, "cs101", A.DEVOICE, "bob", 0, "").code == 0
    bob.send(m.Say(3, "cs101", "and now?"))
    assert bob.last(m.Rejected).code == ErrorCode.MODERATED
    teacher.send(m.Who("cs101"))
    assert modes_of(teacher.last(m.Presence)) == {"bob": 0, "cid": m.MEMBER_OP, "teacher": m.MEMBER_OP}


def test_private_rooms_invitations_and_keys(tmp_path: Path) -> None:
    net, (teacher,) = classroom(tmp_path, "teacher")
    bob = Peer(net, "bob")
    assert teacher.request(m.SetRoom, "cs101", m.Setting.PRIVATE, "on").code == 0
    assert bob.request(m.JoinRoom, "cs101").code == ErrorCode.INVITE_ONLY
    assert teacher.request(m.Moderate, "cs101", A.INVITE, "bob", 0, "").code == 0
    assert bob.last(m.Notice).text == "teacher invites you to #cs101: /join cs101"
    assert bob.request(m.JoinRoom, "cs101").code == 0
    assert teacher.request(m.SetRoom, "cs101", m.Setting.KEY, "sesame").code == 0
    assert teacher.last(m.RoomEvent).value == ""  # the key is not shown to members
    assert teacher.last(m.RoomState).modes & m.ROOM_KEYED
    assert teacher.request(m.SetRoom, "cs101", m.Setting.PRIVATE, "off").code == 0
    cid = Peer(net, "cid")
    assert cid.request(m.JoinRoom, "cs101", 0, "wrong").code == ErrorCode.BAD_KEY
    assert cid.request(m.JoinRoom, "cs101", 0, "sesame").code == 0


def test_announcement_and_its_read_tally(tmp_path: Path) -> None:
    net, (teacher, ani, budi) = classroom(tmp_path, "teacher", "ani", "budi")
    olga = Peer(net, "olga", flags=0)  # version 1, in lobby
    assert teacher.request(m.SetRoom, "cs101", m.Setting.ANNOUNCEMENT, "Quiz at 10").code == 0
    ann = ani.last(m.Announcement)
    assert (ann.announcement_id, ann.by, ann.text) == (1, "teacher", "Quiz at 10")
    tally = teacher.last(m.AnnouncementTally)
    assert (tally.seen, tally.total, tally.not_yet) == (0, 2, ("ani", "budi"))
    assert not ani.of(m.AnnouncementTally)
    ani.send(m.AnnouncementSeen("cs101", 1))
    ani.send(m.AnnouncementSeen("cs101", 1))  # once per member
    ani.send(m.AnnouncementSeen("cs101", 9))  # not the current one: ignored
    tally = teacher.last(m.AnnouncementTally)
    assert (tally.seen, tally.total, tally.not_yet) == (1, 2, ("budi",))
    budi.send(m.AnnouncementSeen("cs101", 1))
    assert teacher.last(m.AnnouncementTally).seen == 2
    assert len(teacher.of(m.AnnouncementTally)) == 3  # coalesced: one per flush with news
    late = Peer(net, "dewi")  # joining shows it; an operator's join also brings the tally
    late.request(m.JoinRoom, "cs101")
    assert late.last(m.Announcement).text == "Quiz at 10"
    assert teacher.request(m.SetRoom, "lobby", m.Setting.ANNOUNCEMENT, "x").code == ErrorCode.NOT_OPERATOR
    assert not olga.of(m.Notice)
    assert teacher.request(m.SetRoom, "cs101", m.Setting.ANNOUNCEMENT, "").code == 0
    cleared = ani.last(m.Announcement)
    assert (cleared.announcement_id, cleared.text) == (1, "")


def test_admins_are_operators_everywhere_and_cannot_be_sanctioned(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    Peer(net, "root").send(m.Bye())
    assert net.relay is not None and net.relay.store.set_admin("root", True)
    root, olga = Peer(net, "root"), Peer(net, "olga", flags=0)  # olga: version 1, lobby only
    assert root.last(m.RoomState).you == m.MEMBER_OP | m.MEMBER_ADMIN
    assert root.request(m.SetRoom, "lobby", m.Setting.ANNOUNCEMENT, "Welcome").code == 0
    assert olga.last(m.Notice) == m.Notice(ErrorCode.ROOM_NEWS, "announcement by root: Welcome")
    bob = Peer(net, "bob")
    assert bob.request(m.JoinRoom, "cs101").code == 0
    assert bob.request(m.Moderate, "cs101", A.BAN, "root", 0, "").code == ErrorCode.NOT_ALLOWED
    assert root.request(m.JoinRoom, "cs101").code == 0
    assert root.request(m.Moderate, "cs101", A.DEOP, "bob", 0, "").code == 0
    assert root.request(m.Moderate, "lobby", A.KICK, "olga", 0, "bye").code == 0
    closed = olga.last(m.Closed)
    assert (closed.code, closed.text) == (ErrorCode.KICKED, "olga was kicked by root: bye")
    assert [(x.user, x.reason) for x in bob.of(m.Left)] == [("olga", "kicked by root")]


def test_every_moderation_action_is_logged_with_its_actor_markup_escaped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _net, (teacher, _bob) = classroom(tmp_path, "teacher", "bob")
    with caplog.at_level(logging.INFO, logger="labchat.server.relay"):
        teacher.request(m.Moderate, "cs101", A.MUTE, "bob", 0, "[red]spam[/red]")
        teacher.request(m.SetRoom, "cs101", m.Setting.TOPIC, "Lab [b]3")
    lines = [r.getMessage() for r in caplog.records]
    muted = "bob was muted by teacher (until lifted): \\[red]spam\\[/red]"
    assert f"[bold yellow]teacher[/] in cs101: {muted}" in lines
    assert "[bold yellow]teacher[/] in cs101: teacher set the topic: Lab \\[b]3" in lines


def test_private_messages_reach_a_user_whatever_rooms_it_is_in(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    ana, budi = Peer(net, "ana"), Peer(net, "budi")
    ana.request(m.JoinRoom, "cs101")
    ana.request(m.PartRoom, "lobby", "")
    budi.request(m.JoinRoom, "art")
    budi.request(m.PartRoom, "lobby", "")
    ana.send(m.Whisper(3, "budi", "psst"))
    assert budi.last(m.Private).text == "psst" and ana.last(m.Accepted).msg_id == 3


def test_a_version_1_login_to_a_room_it_is_banned_from_fails(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    Peer(net, "root").send(m.Bye())
    assert net.relay is not None and net.relay.store.set_admin("root", True)
    root, olga = Peer(net, "root"), Peer(net, "olga", flags=0)
    assert root.request(m.Moderate, "lobby", A.BAN, "olga", 5, "").code == 0
    assert olga.last(m.Closed).code == ErrorCode.BANNED
    again = Peer(net, "olga", flags=0)
    refused = again.last(m.LoginFailed)
    assert refused.code == ErrorCode.BANNED and refused.text == "you are banned from lobby for 5 more min"
