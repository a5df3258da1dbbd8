"""Typed commands of rooms and roles (commands.py): the spellings users type, the errors they get."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labchat.client import commands as c
from labchat.protocol.messages import ROOM_RULE, Action, Setting


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("/join #CS101", c.Join("cs101")),
        ("/join cs101 s3cret", c.Join("cs101", "s3cret")),
        ("/part", c.Part(None)),
        ("/part #cs101 see you", c.Part("cs101", "see you")),
        ("/part cs101 bye", c.Part("cs101", "bye", maybe_room=True)),
        ("/part gone for lunch!", c.Part("gone", "for lunch!", maybe_room=True)),
        ("/part Wait, back at 2", c.Part(None, "Wait, back at 2")),
        ("/list", c.ListRooms()),
        ("/rooms", c.Rooms()),
        ("/say #lab-b is anyone there", c.SayTo("lab-b", "is anyone there")),
        ("/topic", c.Topic(None)),
        ("/topic Lab 3: sorting", c.Topic("Lab 3: sorting")),
        ("/key", c.Key("")),
        ("/key open sesame", c.Key("open sesame")),
        ("/invite bob", c.Moderate(Action.INVITE, "bob")),
        ("/op bob", c.Moderate(Action.OP, "bob")),
        ("/DEOP bob", c.Moderate(Action.DEOP, "bob")),
        ("/voice bob", c.Moderate(Action.VOICE, "bob")),
        ("/devoice bob", c.Moderate(Action.DEVOICE, "bob")),
        ("/kick bob", c.Moderate(Action.KICK, "bob")),
        ("/kick bob 10 times too loud", c.Moderate(Action.KICK, "bob", 0, "10 times too loud")),
        ("/mute bob", c.Moderate(Action.MUTE, "bob")),
        ("/mute bob 10", c.Moderate(Action.MUTE, "bob", 10)),
        ("/mute bob 10 spamming the room", c.Moderate(Action.MUTE, "bob", 10, "spamming the room")),
        ("/mute bob spamming", c.Moderate(Action.MUTE, "bob", 0, "spamming")),
        ("/unmute bob", c.Moderate(Action.UNMUTE, "bob")),
        ("/ban bob 60 cheating", c.Moderate(Action.BAN, "bob", 60, "cheating")),
        ("/ban bob 43200", c.Moderate(Action.BAN, "bob", 43200)),
        ("/unban bob", c.Moderate(Action.UNBAN, "bob")),
        ("/moderate on", c.Switch(Setting.MODERATED, True)),
        ("/private OFF", c.Switch(Setting.PRIVATE, False)),
        ("/topiclock on", c.Switch(Setting.TOPIC_LOCK, True)),
        ("/announce Quiz at 10", c.Announce("Quiz at 10")),
        ("/announce clear", c.Announce("")),
        ("/announce", c.Announce(None)),
        ("/quit", c.Quit()),
    ],
)
def test_room_commands(line: str, parsed: c.Command) -> None:
    assert c.parse(line) == parsed


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("/join", "usage: /join ROOM [KEY]"),
        ("/join Bad!Room", f"invalid room name 'Bad!Room': room names are {ROOM_RULE}"),
        ("/join #", "invalid room name '#'"),
        ("/say cs101", "usage: /say ROOM text"),
        ("/say #no!pe hi", "invalid room name"),
        ("/part #bad!room", "invalid room name"),
        ("/op", "usage: /op NAME"),
        ("/op bob alice", "usage: /op NAME (one name)"),
        ("/kick 9lives", "invalid name '9lives': names are 1-20 characters"),
        ("/mute", "usage: /mute NAME [MINUTES] [reason]"),
        ("/mute bob 0", "MINUTES is a whole number from 1 to 43200"),
        ("/ban bob 43201 forever", "MINUTES is a whole number from 1 to 43200"),
        ("/mute bob -5", "MINUTES is a whole number"),
        ("/moderate", "usage: /moderate on|off"),
        ("/private maybe", "usage: /private on|off"),
    ],
)
def test_room_command_errors_are_one_line_and_name_the_rule(line: str, error: str) -> None:
    parsed = c.parse(line)
    assert isinstance(parsed, c.Invalid)
    assert parsed.error.startswith(error) and "\n" not in parsed.error


def test_help_lists_every_room_command_and_tab_completes_them() -> None:
    names = c.command_names()
    for word in ("join", "part", "list", "rooms", "say", "topic", "invite", "key", "op", "deop", "voice",
                 "devoice", "kick", "mute", "unmute", "ban", "unban", "moderate", "private", "topiclock",
                 "announce", "msg", "who", "quit"):  # fmt: skip
        assert word in names
    assert len(names) == len(set(names))


@given(st.text(max_size=200))
def test_parse_never_raises(line: str) -> None:
    c.parse(line)


@given(
    st.sampled_from(
        [
            "join",
            "part",
            "say",
            "op",
            "kick",
            "mute",
            "ban",
            "topic",
            "key",
            "announce",
            "moderate",
            "invite",
            "unban",
            "private",
        ]
    ),
    st.text(max_size=80),
)
def test_parse_never_raises_on_any_arguments(name: str, rest: str) -> None:
    c.parse(f"/{name} {rest}")
