"""Fixed scenes for snapshots and screenshots: the app with no network, fed a scripted conversation.

Every name, time and fingerprint is fixed (times in UTC from a fixed clock), so the pictures are the
same on every machine and every run.
"""

from __future__ import annotations

from datetime import UTC

from textual.pilot import Pilot

from labchat.protocol import events as ev
from labchat.protocol.messages import Action
from labchat.tui import messages as msg
from labchat.tui.app import LabchatApp, make_app

#: 2024-03-05 09:41:00 UTC.
T0 = 1_709_631_660.0
FINGERPRINT = "SHA256:q9Jk7w1pXbA0mHc4tV2yLr8eZs6NfUo3iGd5KxWlTjE"
OTHER_FINGERPRINT = "SHA256:Zr4Ue8tYw2QbN1cV7xLm0Hs9Kd3Fj6Pg5Ao8Ti2WnBy"


def scene_app(**kwargs: object) -> LabchatApp:
    """The app as `labchat 192.0.2.10 8080 5000` would build it, frozen in time."""
    return make_app("192.0.2.10", 8080, 5000, tz=UTC, clock=lambda: T0 + 300, **kwargs)  # type: ignore[arg-type]


def conversation(app: LabchatApp) -> list[msg.CoreEvent]:
    """A few minutes of a lab room, as the network worker would post it."""
    a = app.attempt
    room = "lobby"

    def said(seq: int, minute: float, user: str, text: str, **flags: bool) -> msg.CoreEvent:
        return msg.CoreEvent(a, ev.MessageReceived(room, seq, T0 + minute * 60, user, text, **flags))

    return [
        msg.CoreEvent(a, ev.StateChanged(ev.ConnectionState.CONNECTED)),
        msg.CoreEvent(a, ev.LoggedIn("alice", room, "physics-lab", False, False)),
        said(41, 0, "bob", "morning! is the printer on the 2nd floor working?", history=True),
        said(42, 0.5, "carol", "it jammed again 🙃 use the one by the stairs", history=True),
        msg.CoreEvent(a, ev.PresenceUpdated(room, ("alice", "bob", "carol", "dave"))),
        msg.CoreEvent(a, ev.UserJoined(room, "erin", T0 + 120)),
        said(43, 2.2, "erin", "hi all — 你好 — can someone review my plot script?"),
        said(44, 2.5, "bob", "alice wrote most of it, ask her"),
        said(45, 2.6, "dave", "waves at erin", action=True),
        msg.CoreEvent(a, ev.MessageQueued(1, room, "sure, send it over [after lunch]")),
        msg.CoreEvent(
            a, ev.MessageDelivered(1, room, 46, T0 + 170, "sure, send it over [after lunch]")
        ),
        msg.CoreEvent(a, ev.PrivateReceived("erin", "alice", T0 + 200, "thanks! it's plot_v3.py")),
        msg.CoreEvent(a, ev.UserLeft(room, "dave", T0 + 230, "timeout")),
        msg.CoreEvent(a, ev.ServerNotice("Server restarts at 18:00 for updates")),
        msg.CoreEvent(a, ev.MessageQueued(2, room, "got it, looking now", to="erin")),
        msg.CoreEvent(a, ev.MessageFailed(2, "erin is not online", "got it, looking now", "erin")),
        msg.CoreEvent(a, ev.MessageQueued(3, room, "anyone up for coffee?")),
    ]


async def play(pilot: Pilot[object], messages: list[msg.CoreEvent]) -> None:
    """Post the messages as the network worker would, and let the log draw them."""
    app = pilot.app
    assert isinstance(app, LabchatApp)
    # A steady cursor: a scene can take long enough for a blink to land in the picture.
    app.room.composer.input.cursor_blink = False
    for message in messages:
        app.post_message(message)
    await pilot.pause()
    assert isinstance(app, LabchatApp)
    log = app.room.log_view
    while log._unrendered:
        await pilot.pause(0.02)
    await pilot.pause()


def rooms_conversation(app: LabchatApp) -> list[msg.CoreEvent]:
    """A teacher's class on a server with rooms: alice in lobby, cs101 (operator) and a private room."""
    a = app.attempt

    def said(room: str, seq: int, minute: float, user: str, text: str) -> msg.CoreEvent:
        return msg.CoreEvent(a, ev.MessageReceived(room, seq, T0 + minute * 60, user, text))

    op, voice, guest = 0x1, 0x2, 0x8  # MEMBER_OP, MEMBER_VOICE, MEMBER_GUEST
    return [
        msg.CoreEvent(a, ev.StateChanged(ev.ConnectionState.CONNECTED)),
        msg.CoreEvent(a, ev.LoggedIn("alice", "lobby", "physics-lab", False, False, rooms=True)),
        msg.CoreEvent(a, ev.RoomState("lobby", "", 0, 0, None, 5, joined=True)),
        msg.CoreEvent(a, ev.PresenceUpdated("lobby", ("alice", "bob", "carol"))),
        msg.CoreEvent(a, ev.RoomState("cs101", "Lab 3: pointers", 0x8, op, None, 6, joined=True)),
        msg.CoreEvent(a, ev.Announcement("cs101", 2, "alice", T0, "Quiz at 10:30, closed book")),
        msg.CoreEvent(a, ev.AnnouncementTally("cs101", 2, 3, 5, ("ani", "budi"))),
        msg.CoreEvent(
            a,
            ev.PresenceUpdated(
                "cs101",
                ("alice", "ani", "bob", "budi", "guest7"),
                modes={"alice": op, "bob": voice, "guest7": guest},
            ),
        ),
        msg.CoreEvent(a, ev.RoomState("staff", "", 0x1, op, None, 2, joined=True)),
        said("lobby", 10, 1, "bob", "anyone seen my charger?"),
        said("cs101", 20, 2, "ani", "is the quiz on chapter 4?"),
        said("cs101", 21, 2.5, "bob", "alice: can we use notes?"),
        said("staff", 5, 3, "carol", "grades are due friday"),
        said("lobby", 11, 4, "carol", "it's by the printer"),
    ]


def classroom_teacher(app: LabchatApp) -> list[msg.CoreEvent]:
    """The teacher's view of cs101 during a lab: seats, three hands up (one taken), a poll's tally."""
    a = app.attempt
    op = 0x1  # MEMBER_OP

    def said(seq: int, minute: float, user: str, text: str) -> msg.CoreEvent:
        return msg.CoreEvent(a, ev.MessageReceived("cs101", seq, T0 + minute * 60, user, text))

    return [
        msg.CoreEvent(a, ev.StateChanged(ev.ConnectionState.CONNECTED)),
        msg.CoreEvent(a, ev.LoggedIn("teacher", "cs101", "physics-lab", False, False, rooms=True)),
        msg.CoreEvent(a, ev.RoomState("cs101", "Lab 3: pointers", 0, op, None, 5, joined=True)),
        msg.CoreEvent(
            a,
            ev.PresenceUpdated(
                "cs101",
                ("ani", "budi", "cici", "dewi", "teacher"),
                modes={"teacher": op},
                seats={"ani": "PC-03", "budi": "PC-14", "cici": "PC-07", "dewi": "PC-21"},
            ),
        ),
        said(30, 0, "ani", "which file is exercise 2 in?"),
        said(31, 0.5, "teacher", "lab3/ex2.c"),
        msg.CoreEvent(
            a,
            ev.QueueUpdated(
                "cs101",
                (
                    ev.QueueItem("budi", "PC-14", "segfault in exercise 2", T0 - 240, "teacher"),
                    ev.QueueItem("ani", "PC-03", "what does -> mean?", T0 + 60, ""),
                    ev.QueueItem("dewi", "PC-21", "", T0 + 240, ""),
                ),
            ),
        ),
        msg.CoreEvent(
            a,
            ev.PollShown(
                "cs101", 3, "teacher", "Done with exercise 2?", ("yes", "no", "stuck"), False, False,
                (2, 1, 1), 4, 0, ((1, "ani"), (1, "cici"), (2, "dewi"), (3, "budi")),
            ),
        ),
    ]


def classroom_student(app: LabchatApp) -> list[msg.CoreEvent]:
    """budi's view of cs101 in quiet mode: his hand up, an open poll he voted on, a line he sent
    to the operators."""
    a = app.attempt
    op, quiet = 0x1, 0x10  # MEMBER_OP, ROOM_QUIET
    return [
        msg.CoreEvent(a, ev.StateChanged(ev.ConnectionState.CONNECTED)),
        msg.CoreEvent(a, ev.LoggedIn("budi", "cs101", "physics-lab", False, False, rooms=True)),
        msg.CoreEvent(
            a, ev.RoomState("cs101", "Quiz", quiet, 0, None, 4, joined=True, quiet_until=T0 + 300 + 12 * 60)
        ),
        msg.CoreEvent(
            a,
            ev.PresenceUpdated(
                "cs101", ("ani", "budi", "cici", "teacher"), modes={"teacher": op},
                seats={"ani": "PC-03", "budi": "PC-14", "cici": "PC-07"},
            ),
        ),
        msg.CoreEvent(
            a, ev.RoomEvent("cs101", T0, Action.QUIET_SET, "teacher", "", 12, "on", "quiet for 12 min")
        ),
        msg.CoreEvent(
            a,
            ev.PollShown(
                "cs101", 4, "teacher", "Which is a pointer to int?", ("int *p", "int &p", "*int p"), False,
                False, (), 0, 1, (),
            ),
        ),
        msg.CoreEvent(
            a, ev.RoomEvent("cs101", T0 + 60, Action.HAND_RAISED, "budi", "budi", 3, "", "you are 3rd")
        ),
        msg.CoreEvent(a, ev.MessageQueued(1, "cs101", "is question 4 about arrays?")),
        msg.CoreEvent(a, ev.MessageDelivered(1, "cs101", 0, T0 + 290, "is question 4 about arrays?")),
    ]
