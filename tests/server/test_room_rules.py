"""Who may do what in a room (docs/protocol.md 18.7-18.9): room.py's one table and the checks built on
it, without I/O, the clock a number the test moves."""

from __future__ import annotations

import pytest

from labchat.protocol import messages as m
from labchat.protocol.errors import ErrorCode
from labchat.server.room import RULES, Act, Role, Room, may, minutes_left
from labchat.server.store import SanctionRecord

MIN = 60_000


def test_the_table_has_one_answer_for_every_action_and_role() -> None:
    assert set(RULES) == {(act, role) for act in Act for role in Role}


@pytest.mark.parametrize(
    ("act", "allowed"),
    [
        (Act.SPEAK, {Role.GUEST, Role.MEMBER, Role.VOICE, Role.OP, Role.ADMIN}),
        (Act.SPEAK_MODERATED, {Role.VOICE, Role.OP, Role.ADMIN}),
        (Act.SET_TOPIC_LOCKED, {Role.OP, Role.ADMIN}),
        (Act.MODERATE, {Role.OP, Role.ADMIN}),
        (Act.BE_SANCTIONED, {Role.GUEST, Role.MEMBER, Role.VOICE, Role.OP}),
        (Act.BE_OPERATOR, {Role.MEMBER, Role.VOICE, Role.OP, Role.ADMIN}),
    ],
)
def test_rows(act: Act, allowed: set[Role]) -> None:
    assert {role for role in Role if may(act, role)} == allowed


def room_with(**kw: object) -> Room:
    room = Room("cs101", **kw)  # type: ignore[arg-type]
    room.add_member("Teacher", b"t")
    room.add_member("bob", b"b")
    room.roles["teacher"] = "op"
    return room


def test_a_timed_ban_counts_down_and_ends_with_the_clock() -> None:
    room = room_with()
    now = 1_000_000
    room.sanctions[("bob", "ban")] = SanctionRecord("cs101", "bob", "ban", now + 10 * MIN, "Teacher", "")
    assert room.check_join("bob", Role.MEMBER, "", now) == (
        ErrorCode.BANNED, "you are banned from cs101 for 10 more min"
    )
    later = room.check_join("bob", Role.MEMBER, "", now + 9 * MIN + 1)
    assert later is not None and later[1].endswith("for 1 more min")
    assert room.check_join("bob", Role.MEMBER, "", now + 10 * MIN) is None  # over, timer or not
    assert room.check_join("bob", Role.ADMIN, "", now) is None  # admins are never banned
    room.sanctions[("bob", "ban")] = SanctionRecord("cs101", "bob", "ban", None, "Teacher", "")
    forever = room.check_join("bob", Role.MEMBER, "", now + 10**9)
    assert forever is not None and forever[1].endswith("until lifted")


def test_private_and_keyed_rooms() -> None:
    room = room_with(modes=m.ROOM_PRIVATE)
    assert room.check_join("cid", Role.MEMBER, "", 0)[0] == ErrorCode.INVITE_ONLY  # type: ignore[index]
    assert room.check_join("cid", Role.OP, "", 0) is None
    room.invites.add("cid")
    assert room.check_join("cid", Role.GUEST, "", 0) is None
    room.modes, room.key = m.ROOM_KEYED, "sesame"
    assert room.check_join("cid", Role.MEMBER, "", 0)[0] == ErrorCode.BAD_KEY  # type: ignore[index]
    assert room.check_join("cid", Role.MEMBER, "sesame", 0) is None
    assert room.check_join("cid", Role.ADMIN, "", 0) is None
    assert room.visible_to("eve", Role.MEMBER)  # keyed, not private: listed
    room.modes |= m.ROOM_PRIVATE
    assert not room.visible_to("eve", Role.MEMBER) and room.visible_to("cid", Role.MEMBER)  # cid: invited
    assert room.visible_to("teacher", Role.MEMBER) and room.visible_to("eve", Role.ADMIN)


def test_mutes_and_moderation_decide_who_speaks() -> None:
    room = room_with()
    now = 5 * MIN
    room.sanctions[("bob", "mute")] = SanctionRecord("cs101", "bob", "mute", now + 90_000, "Teacher", "")
    assert room.check_speak("bob", now) == (ErrorCode.MUTED, "you are muted in cs101 for 2 more min")
    assert room.member_bits("bob", now) == m.MEMBER_MUTED
    assert room.muted_until_ms("bob", now) == now + 90_000
    assert room.check_speak("bob", now + 90_000) is None
    room.modes = m.ROOM_MODERATED
    assert room.check_speak("bob", now + 90_000)[0] == ErrorCode.MODERATED  # type: ignore[index]
    assert room.check_speak("teacher", now) is None
    room.roles["bob"] = "voice"
    assert room.check_speak("bob", now + 90_000) is None
    assert room.presence_modes(now) == "FA"  # bob: voice (2) + muted (4), Teacher: op (1)
    assert room.presence_modes(now + 90_000) == "BA"  # the mute is over


def test_guests_and_admins_bits() -> None:
    room = Room("lab")
    room.add_member("ani", b"a", m.MEMBER_GUEST)
    room.add_member("root", b"r", m.MEMBER_ADMIN)
    room.roles["ani"] = "op"  # a stray row: a guest is never an operator
    assert room.member_role("ani") is Role.GUEST and room.member_bits("ani", 0) == m.MEMBER_GUEST
    assert room.member_bits("root", 0) == m.MEMBER_ADMIN | m.MEMBER_OP
    room.account_members = 1
    assert room.members_total() == 2  # the account root, and the online guest ani
    assert room.state_for("ani", 0).you == m.MEMBER_GUEST


def test_tally_counts_members_but_the_author() -> None:
    room = Room("cs101", announcement_id=3, announcement_text="Quiz", announcement_by="Teacher")
    room.seen = {"ani"}
    tally = room.tally(["Teacher", "budi", "Ani", "cid"])
    assert (tally.seen, tally.total, tally.not_yet) == (1, 3, ("budi", "cid"))
    assert minutes_left(60_001, 0) == 2 and minutes_left(60_000, 0) == 1
