"""The client's side of rooms and roles (docs/protocol.md 18), sans-I/O: a `ClientConnection` against a
scripted server that sends exactly what the protocol document says, with a hand-moved clock."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.client import ONE_ROOM, ClientConfig
from labchat.protocol.errors import ErrorCode, LocalProtocolError

from .scripted_server import ScriptedServer, logged_in


def msg(room: str, seq: int, text: str, user: str = "bob") -> m.RoomMessage:
    return m.RoomMessage(room, seq, 1_700_000_000_000 + seq, user, text, 0, 0)


def texts(server: ScriptedServer) -> list[tuple[str, str]]:
    return [(e.room, e.text) for e in server.events(ev.MessageReceived)]  # type: ignore[attr-defined]


def login_again(server: ScriptedServer, rooms: tuple[str, ...]) -> m.Login:
    """Restart the server; answer the client's new LOGIN with the same rooms. Returns that LOGIN."""
    before = len(server.sent(m.Login))
    server.restart()
    logins = server.sent(m.Login)
    assert len(logins) == before + 1
    login = logins[-1]
    assert isinstance(login, m.Login)
    server.send(m.LoginOk(login.user, rooms[0], flags=m.CAP_ROOMS | m.CAP_LONG_MESSAGES))
    for room in rooms:
        server.send(m.RoomState(room, members=3))
    return login


# ---------------------------------------------------------------- login and cursors


def test_login_announces_rooms_and_the_server_says_which_rooms_we_are_in() -> None:
    server = logged_in(("lobby", "cs101"))
    login = server.last(m.Login)
    assert isinstance(login, m.Login)
    assert login.flags & m.CAP_ROOMS and login.cursors == ()
    [logged] = server.events(ev.LoggedIn)
    assert isinstance(logged, ev.LoggedIn) and logged.rooms and not logged.guest
    states = server.events(ev.RoomState)
    assert [(s.room, s.joined) for s in states] == [("lobby", True), ("cs101", True)]  # type: ignore[attr-defined]
    assert server.conn.rooms == ("lobby", "cs101")
    assert server.conn.current_room == "lobby"  # LOGIN_OK's room: the first one joined


def test_each_room_is_exactly_once_and_a_relogin_sends_every_cursor() -> None:
    server = logged_in(("lobby", "cs101"))
    server.send(msg("lobby", 1, "a"), msg("lobby", 2, "b"), msg("cs101", 1, "x"), msg("cs101", 1, "x again"))
    assert texts(server) == [("lobby", "a"), ("lobby", "b"), ("cs101", "x")]
    assert (server.conn.last_seq_of("lobby"), server.conn.last_seq_of("cs101")) == (2, 1)
    server.conn.set_current_room("cs101")
    login = login_again(server, ("lobby", "cs101"))
    # The current room rides in LOGIN's room/resume_seq, every other held room in `cursors`.
    assert (login.room, login.resume_seq, login.cursors) == ("cs101", 1, (("lobby", 2),))
    states = server.events(ev.RoomState)
    assert [s.joined for s in states][-2:] == [False, False]  # type: ignore[attr-defined]  # not new to us
    server.take()
    # The catch-up replays what was shown already: dropped per room; the rest shown once.
    server.send(msg("lobby", 2, "b"), msg("lobby", 3, "c"), msg("cs101", 1, "x"), msg("cs101", 2, "y"))
    assert texts(server) == [("lobby", "c"), ("cs101", "y")]
    assert server.conn.current_room == "cs101"


def test_a_guest_login_is_reported() -> None:
    server = ScriptedServer.start()
    server.send(m.LoginOk("alice", "lobby", flags=m.CAP_ROOMS | m.LOGIN_OK_GUEST))
    [logged] = server.events(ev.LoggedIn)
    assert isinstance(logged, ev.LoggedIn) and logged.guest and logged.rooms


# ---------------------------------------------------------------- join, part, list


def test_join_makes_the_new_room_current_before_its_history() -> None:
    server = logged_in()
    server.take()
    request_id = server.conn.join("cs101", "", server.now)
    server.exchange()
    join = server.last(m.JoinRoom)
    assert join == m.JoinRoom(request_id, "cs101", 0, "")
    server.send(m.RoomState("cs101", "Lab 3", m.ROOM_TOPIC_LOCKED, m.MEMBER_OP, 0, 1))
    # Lines typed from now on go to the new room, even before REQUEST_DONE.
    assert server.conn.current_room == "cs101"
    server.conn.say("hello", server.now)
    server.exchange()
    assert server.last(m.Say).room == "cs101"  # type: ignore[attr-defined]
    server.send(m.RequestDone(request_id, 0, 0, ""))
    seen = server.take()
    state = next(e for e in seen if isinstance(e, ev.RoomState))
    assert (state.room, state.topic, state.you, state.joined, state.muted_until) == (
        "cs101",
        "Lab 3",
        m.MEMBER_OP,
        True,
        None,
    )
    assert ev.CurrentRoomChanged("cs101", True) in seen
    assert not server.conn.request_pending(request_id)
    assert server.conn.rooms == ("lobby", "cs101")


def test_a_refused_join_changes_nothing_and_says_why() -> None:
    server = logged_in()
    server.take()
    request_id = server.conn.join("secret", "wrong", server.now)
    server.exchange()
    server.send(m.RequestDone(request_id, ErrorCode.BAD_KEY, 0, "secret needs the right key"))
    failed = ev.RequestFailed("join", "secret", ErrorCode.BAD_KEY, "secret needs the right key", request_id)
    assert server.take() == [failed]
    assert server.conn.current_room == "lobby" and server.conn.rooms == ("lobby",)


def test_joining_a_room_held_since_login_switches_to_it() -> None:
    server = logged_in(("lobby", "cs101"))
    server.take()
    request_id = server.conn.join("cs101", "", server.now)
    server.exchange()
    server.send(m.RequestDone(request_id, 0, 0, ""))  # 18.4: already in, changes nothing
    assert server.take() == [ev.CurrentRoomChanged("cs101", True)]


def test_requests_made_before_the_login_are_sent_after_it() -> None:
    server = ScriptedServer.start()
    request_id = server.conn.join("cs101", "", server.now)  # `--room cs101`: queued, never lost
    server.exchange()
    assert not server.sent(m.JoinRoom)
    server.send(m.LoginOk("alice", "lobby", flags=m.CAP_ROOMS), m.RoomState("lobby"))
    assert server.last(m.JoinRoom) == m.JoinRoom(request_id, "cs101", 0, "")


def test_a_request_cut_off_by_a_reconnect_is_asked_again() -> None:
    server = logged_in(("lobby", "cs101"))
    request_id = server.conn.part("cs101", "bye", server.now)
    server.exchange()
    assert len(server.sent(m.PartRoom)) == 1
    # The server parted us but the answer died with the session: the re-login holds only lobby.
    login_again(server, ("lobby",))
    assert len(server.sent(m.PartRoom)) == 2
    server.take()
    server.send(m.RequestDone(request_id, ErrorCode.NO_SUCH_ROOM, 0, "you are not in cs101"))
    # Not an error to the user: the part had happened.
    assert server.take() == [ev.RoomLeft("cs101")]
    assert server.conn.rooms == ("lobby",)


def test_part_drops_the_room_its_cursor_and_moves_the_current_room() -> None:
    server = logged_in(("lobby", "cs101", "lab-b"))
    server.send(msg("cs101", 5, "x"))
    server.conn.set_current_room("cs101")
    server.take()
    request_id = server.conn.part("cs101", "", server.now)
    server.exchange()
    server.send(m.RoomLeft("cs101"), m.RequestDone(request_id, 0, 0, ""))
    assert server.take() == [ev.RoomLeft("cs101"), ev.CurrentRoomChanged("lab-b", False)]
    assert server.conn.last_seq_of("cs101") == 0  # a later JOIN starts from the newcomer's view
    assert server.conn.rooms == ("lobby", "lab-b")
    with pytest.raises(LocalProtocolError, match="not in #cs101"):
        server.conn.say("hi", server.now, room="cs101")


def test_kicked_and_banned() -> None:
    server = logged_in(("lobby", "cs101", "lab-b"))
    server.take()
    server.send(m.RoomLeft("cs101", ErrorCode.KICKED, "teacher", "too loud"))
    server.send(m.RoomLeft("lab-b", ErrorCode.BANNED, "teacher", "", 1_700_000_600_000))
    server.send(m.RoomLeft("lobby", ErrorCode.BANNED, "teacher", "", m.UNTIL_LIFTED_MS))
    left = server.events(ev.RoomLeft)
    assert left == [
        ev.RoomLeft("cs101", ErrorCode.KICKED, "teacher", "too loud", None),
        ev.RoomLeft("lab-b", ErrorCode.BANNED, "teacher", "", 1_700_000_600.0),
        ev.RoomLeft("lobby", ErrorCode.BANNED, "teacher", "", math.inf),
    ]
    assert server.conn.rooms == ()
    assert server.events(ev.CurrentRoomChanged)[-1] == ev.CurrentRoomChanged("", False)
    with pytest.raises(LocalProtocolError, match="no room"):
        server.conn.say("anyone?", server.now)


def test_list_collects_room_infos_into_one_answer() -> None:
    server = logged_in()
    server.take()
    request_id = server.conn.list_rooms(server.now)
    server.exchange()
    assert server.last(m.ListRooms) == m.ListRooms(request_id)
    server.send(
        m.RoomInfo(request_id, "cs101", 12, "Lab 3", m.ROOM_MODERATED),
        m.RoomInfo(request_id + 1000, "stray", 1),  # another request's: not ours
        m.RoomInfo(request_id, "lobby", 30),
        m.RequestDone(request_id, 0, 1, ""),
    )
    assert server.take() == [
        ev.RoomList(
            (ev.RoomInfo("cs101", 12, "Lab 3", m.ROOM_MODERATED), ev.RoomInfo("lobby", 30, "", 0)),
            more=True,
            request_id=request_id,
        )
    ]


def test_operator_requests_and_their_refusals() -> None:
    server = logged_in(("lobby", "cs101"))
    server.take()
    set_id = server.conn.set_room("cs101", m.Setting.TOPIC, "Lab 3", server.now)
    mod_id = server.conn.moderate("cs101", m.Action.MUTE, "bob", 10, "spam", server.now)
    server.exchange()
    assert server.last(m.SetRoom) == m.SetRoom(set_id, "cs101", m.Setting.TOPIC, "Lab 3")
    assert server.last(m.Moderate) == m.Moderate(mod_id, "cs101", m.Action.MUTE, "bob", 10, "spam")
    text = "only operators of cs101 can mute"
    server.send(m.RequestDone(set_id, 0, 0, ""), m.RequestDone(mod_id, ErrorCode.NOT_OPERATOR, 0, text))
    assert server.take() == [ev.RequestFailed("moderate", "cs101", ErrorCode.NOT_OPERATOR, text, mod_id)]
    with pytest.raises(LocalProtocolError, match="not in #elsewhere"):
        server.conn.moderate("elsewhere", m.Action.KICK, "bob", 0, "", server.now)
    with pytest.raises(LocalProtocolError, match="invalid room name"):
        server.conn.set_room("Bad Room", m.Setting.TOPIC, "x", server.now)


def test_say_to_a_named_room() -> None:
    server = logged_in(("lobby", "cs101"))
    [local_id] = server.conn.say("to the class", server.now, room="cs101")
    server.exchange()
    assert server.last(m.Say).room == "cs101"  # type: ignore[attr-defined]
    server.send(m.Accepted(local_id, "cs101", 7, 1_700_000_000_000))
    assert server.conn.last_seq_of("cs101") == 7 and server.conn.last_seq_of("lobby") == 0
    [queued] = server.events(ev.MessageQueued)
    assert queued.room == "cs101"  # type: ignore[attr-defined]


def test_a_muted_message_fails_with_its_room_and_code() -> None:
    server = logged_in(("lobby", "cs101"))
    [local_id] = server.conn.say("hello?", server.now, room="cs101")
    server.exchange()
    server.send(m.Rejected(local_id, ErrorCode.MUTED, 0, "you are muted in cs101 for 9 more min"))
    [failed] = server.events(ev.MessageFailed)
    assert failed == ev.MessageFailed(
        local_id, "you are muted in cs101 for 9 more min", "hello?", None, "cs101", ErrorCode.MUTED
    )


# ---------------------------------------------------------------- news, roles, announcements


def test_presence_modes_and_room_events_keep_member_bits() -> None:
    server = logged_in()
    server.take()
    op, guest = m.member_mode_char(m.MEMBER_OP), m.member_mode_char(m.MEMBER_GUEST)
    server.send(m.Presence("lobby", ("ani", "bob", "teacher"), 0, 1, "@" + guest))
    server.send(m.Presence("lobby", ("zed",), 0, 0, op))
    [presence] = server.events(ev.PresenceUpdated)
    assert isinstance(presence, ev.PresenceUpdated)
    assert presence.users == ("ani", "bob", "teacher", "zed")
    assert presence.modes == {"bob": m.MEMBER_GUEST, "zed": m.MEMBER_OP}  # teacher: modes ran short
    server.send(m.RoomEvent("lobby", 1, m.Action.OP, "zed", "ani", 0, "", "zed gave ani operator"))
    server.send(m.RoomEvent("lobby", 2, m.Action.MUTE, "zed", "bob", 10, "spam", "bob was muted"))
    server.send(m.RoomEvent("lobby", 3, m.Action.DEOP, "ani", "zed", 0, "", "ani took operator from zed"))
    assert server.conn.member_modes("lobby") == {"ani": m.MEMBER_OP, "bob": m.MEMBER_GUEST | m.MEMBER_MUTED}
    news = server.events(ev.RoomEvent)
    assert news[1] == ev.RoomEvent("lobby", 0.002, m.Action.MUTE, "zed", "bob", 10, "spam", "bob was muted")


def test_an_announcement_is_reported_once_and_acknowledged_once() -> None:
    server = logged_in(("lobby", "cs101"))
    server.take()
    server.send(m.Announcement("cs101", 4, "teacher", 1_700_000_000_000, "Quiz at 10"))
    assert server.take() == [ev.Announcement("cs101", 4, "teacher", 1_700_000_000.0, "Quiz at 10")]
    server.conn.announcement_seen("cs101", 4, server.now)
    server.conn.announcement_seen("cs101", 4, server.now)  # shown twice: acknowledged once
    server.exchange()
    assert server.sent(m.AnnouncementSeen) == [m.AnnouncementSeen("cs101", 4)]
    announcement, tally = server.conn.announcement("cs101")
    assert announcement is not None and announcement.text == "Quiz at 10" and tally is None
    # After a reconnect the server sends it again: not news to the user, but our acknowledgement
    # may have died with the old session, so it goes again.
    login_again(server, ("lobby", "cs101"))
    server.take()
    server.send(m.Announcement("cs101", 4, "teacher", 1_700_000_000_000, "Quiz at 10"))
    assert server.take() == []
    assert server.sent(m.AnnouncementSeen) == [m.AnnouncementSeen("cs101", 4)] * 2
    server.send(m.Announcement("cs101", 4, "teacher", 1_700_000_000_000, ""))  # cleared
    assert server.take() == [ev.Announcement("cs101", 4, "teacher", 1_700_000_000.0, "")]
    assert server.conn.announcement("cs101") == (None, None)


def test_an_acknowledgement_made_while_reconnecting_reaches_the_next_session() -> None:
    server = logged_in(("lobby",))
    server.send(m.Announcement("lobby", 1, "teacher", 0, "Welcome"))
    server.send(m.Closed(ErrorCode.SERVER_SHUTDOWN, "restarting"))
    server.conn.announcement_seen("lobby", 1, server.now)  # goes out on a session that is ending
    login_again(server, ("lobby",))
    server.send(m.Announcement("lobby", 1, "teacher", 0, "Welcome"))  # 18.3: sent again at login
    assert server.sent(m.AnnouncementSeen)[-1] == m.AnnouncementSeen("lobby", 1)
    assert len(server.events(ev.Announcement)) == 1


def test_the_tally_reaches_operators() -> None:
    server = logged_in(("cs101",))
    server.send(m.Announcement("cs101", 1, "teacher", 0, "Quiz"))
    server.take()
    server.send(m.AnnouncementTally("cs101", 1, 1, 2, ("budi",)))
    server.send(m.AnnouncementTally("cs101", 1, 1, 2, ("budi",)))  # the same count again: no news
    assert server.take() == [ev.AnnouncementTally("cs101", 1, 1, 2, ("budi",))]
    assert server.conn.announcement("cs101")[1] == ev.AnnouncementTally("cs101", 1, 1, 2, ("budi",))


def test_room_news_for_a_room_we_are_not_in_is_ignored() -> None:
    server = logged_in()
    server.take()
    server.send(m.Announcement("elsewhere", 1, "x", 0, "hi"), m.RoomLeft("elsewhere"))
    server.send(m.RoomState("Not A Room"))  # a name we could not send back in LOGIN's cursors
    assert server.take() == []
    assert server.conn.rooms == ("lobby",)


# ---------------------------------------------------------------- a server without rooms


def test_a_server_without_rooms_refuses_room_requests_locally_and_works_as_before() -> None:
    server = ScriptedServer.start()
    queued = server.conn.join("cs101", "", server.now)
    server.send(m.LoginOk("alice", "lobby", flags=m.CAP_LONG_MESSAGES))
    assert server.events(ev.RequestFailed) == [ev.RequestFailed("join", "cs101", 0, ONE_ROOM, queued)]
    assert not server.conn.request_pending(queued) and not server.sent(m.JoinRoom)
    assert server.conn.rooms == ("lobby",) and server.conn.server_has_rooms is False
    for call in (
        lambda: server.conn.join("cs101", "", server.now),
        lambda: server.conn.list_rooms(server.now),
        lambda: server.conn.say("x", server.now, room="cs101"),
        lambda: server.conn.moderate("lobby", m.Action.KICK, "bob", 0, "", server.now),
    ):
        with pytest.raises(LocalProtocolError, match=ONE_ROOM):
            call()
    # PRESENCE without modes, chat as ever, and a re-login without cursors.
    server.send(m.Presence("lobby", ("alice", "bob")), msg("lobby", 3, "hi"))
    assert texts(server) == [("lobby", "hi")]
    server.restart()
    login = server.last(m.Login)
    assert isinstance(login, m.Login)
    assert (login.room, login.resume_seq, login.cursors) == ("lobby", 3, ())


def test_a_client_without_the_capability_never_sends_room_requests() -> None:
    config = replace(ClientConfig(), capabilities=m.CAP_LONG_MESSAGES)
    server = logged_in(flags=m.CAP_ROOMS | m.CAP_LONG_MESSAGES, config=config)
    assert not server.last(m.Login).flags & m.CAP_ROOMS  # type: ignore[attr-defined]
    with pytest.raises(LocalProtocolError, match=ONE_ROOM):
        server.conn.join("cs101", "", server.now)


# ---------------------------------------------------------------- hostile input

_text = st.text(max_size=40)
_u32 = st.integers(0, 2**32 - 1)
_u64 = st.integers(0, 2**64 - 1)
_room_messages = st.one_of(
    st.builds(m.RoomState, _text, _text, _u32, _u32, _u64, _u32),
    st.builds(m.RoomLeft, _text, st.integers(0, 255), _text, _text, _u64),
    st.builds(m.RoomInfo, _u32, _text, _u32, _text, _u32),
    st.builds(m.RoomEvent, _text, _u64, st.integers(0, 255), _text, _text, _u32, _text, _text),
    st.builds(m.Announcement, _text, _u64, _text, _u64, _text),
    st.builds(m.AnnouncementTally, _text, _u64, _u32, _u32, st.lists(_text, max_size=5).map(tuple)),
    st.builds(
        m.Presence, _text, st.lists(_text, max_size=5).map(tuple), st.integers(0, 1), st.integers(0, 1), _text
    ),
    st.builds(m.RequestDone, _u32, st.integers(0, 255), st.integers(0, 1), _text),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_room_messages, min_size=1, max_size=12))
def test_any_room_news_from_the_server_is_handled_without_raising(news: list[m.Message]) -> None:
    server = logged_in(("lobby", "cs101"))
    server.conn.join("lab-b", "", server.now)
    server.conn.list_rooms(server.now)
    server.exchange()
    server.send(*news)
    # Whatever it was told, the client can still log in again with what it holds.
    login_again(server, ("lobby",))
    assert server.conn.phase.name == "ONLINE"


def test_a_room_lost_while_away_is_dropped_at_the_first_refusal() -> None:
    server = logged_in(("lobby", "cs101"))
    # Kicked during a reconnect: the ROOM_LEFT died with the old session, the re-login holds lobby.
    login_again(server, ("lobby",))
    server.take()
    [local_id] = server.conn.say("still there?", server.now, room="cs101")
    server.exchange()
    server.send(m.Rejected(local_id, ErrorCode.NO_SUCH_ROOM, 0, "you are not in cs101"))
    seen = server.take()
    assert ev.RoomLeft("cs101", ErrorCode.NO_SUCH_ROOM, "", "you are not in cs101") in seen
    assert server.conn.rooms == ("lobby",)


def test_joins_are_checked_locally_first() -> None:
    rooms = ("lobby", *(f"r{i}" for i in range(m.MAX_ROOMS_PER_USER - 1)))
    server = logged_in(rooms)
    assert len(server.conn.rooms) == m.MAX_ROOMS_PER_USER
    with pytest.raises(LocalProtocolError, match="you are in 32 rooms"):
        server.conn.join("one-more", "", server.now)
    server.conn.join("r5", "", server.now)  # one we are in: fine (it switches)
    with pytest.raises(LocalProtocolError, match="room names are 1-32 characters"):
        server.conn.join("No Such", "", server.now)
    with pytest.raises(LocalProtocolError, match="key"):
        server.conn.join("r5", "k" * (m.MAX_KEY_BYTES + 1), server.now)
