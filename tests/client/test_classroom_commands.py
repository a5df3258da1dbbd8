"""The classroom's typed commands (docs/protocol.md 20): every spelling, one-line errors, and a /poll
parser that never raises."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labchat.client import commands as c
from labchat.protocol import messages as m


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("/hand", c.Hand("")),
        ("/hand segfault in exercise 2", c.Hand("segfault in exercise 2")),
        ("/hand down", c.Hand(down=True)),
        ("/HAND Down", c.Hand(down=True)),
        ("/queue", c.Queue()),
        ("/next", c.Next()),
        ("/done budi", c.Done("budi")),
        ('/poll "Done with exercise 2?" yes | no | stuck',
         c.PollOpen("Done with exercise 2?", ("yes", "no", "stuck"))),
        ('/poll --anonymous "Q" a | b', c.PollOpen("Q", ("a", "b"), anonymous=True)),
        ("/poll Done? yes|no", c.PollOpen("Done?", ("yes", "no"))),
        ("/poll 'Which one?' a | b | c", c.PollOpen("Which one?", ("a", "b", "c"))),
        ("/poll \u201cReady?\u201d yes | no", c.PollOpen("Ready?", ("yes", "no"))),
        ('/poll "Is a | b ok?" yes | no', c.PollOpen("Is a | b ok?", ("yes", "no"))),
        ("/poll close", c.PollClose()),
        ('/poll "close" a | b', c.PollOpen("close", ("a", "b"))),
        ("/poll", c.PollShow()),
        ("/vote 2", c.Vote(2)),
        ("/quiet on", c.Quiet(c.DEFAULT_QUIET_MINUTES)),
        ("/quiet on 45", c.Quiet(45)),
        ("/quiet off", c.Quiet(None)),
        ("/quiet", c.Quiet(None, show=True)),
        ("/session start", c.SessionStart()),
        ("/export", c.Export()),
        ("/export lab3.md", c.Export("lab3.md")),
    ],
)  # fmt: skip
def test_classroom_commands(line: str, parsed: c.Command) -> None:
    assert c.parse(line) == parsed


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('/poll "Q" a', "2 to 9 answers"),
        ('/poll "Q" a || b', "answer 2 is empty"),
        ('/poll "" a | b', "needs a question"),
        ("/poll no question mark a | b", "usage: /poll"),
        ('/poll "unclosed a | b', "usage: /poll"),
        ('/poll "Q" ' + " | ".join("abcdefghij"), "at most 9"),
        ('/poll "Q" a | ' + "x" * 101, "answer 2 is 101 bytes: at most 100"),
        ('/poll "' + "q" * 301 + '" a | b', "at most 300"),
        ("/hand " + "x" * 301, "at most 300"),
        ("/vote", "usage: /vote N"),
        ("/vote 0", "usage: /vote N"),
        ("/vote 10", "usage: /vote N"),
        ("/vote two", "usage: /vote N"),
        ("/vote \u00b2", "usage: /vote N"),
        ("/quiet on 0", "1 to 240"),
        ("/quiet on 241", "1 to 240"),
        ("/quiet maybe", "usage: /quiet"),
        ("/session", "usage: /session start"),
        ("/done", "usage: /done NAME"),
        ("/done bad name", "usage: /done NAME"),
        ("/done b@d", "invalid name"),
        ("/next now", "usage: /next"),
    ],
)
def test_classroom_command_errors_are_one_line(line: str, error: str) -> None:
    parsed = c.parse(line)
    assert isinstance(parsed, c.Invalid), parsed
    assert error in parsed.error and "\n" not in parsed.error


def test_help_lists_the_classroom_commands_and_tab_completes_them() -> None:
    names = c.command_names()
    for word in ("hand", "queue", "next", "done", "poll", "vote", "quiet", "session", "export"):
        assert word in names
    assert len(names) == len(set(names))


@given(st.text(max_size=300))
def test_the_poll_parser_never_raises(rest: str) -> None:
    parsed = c.parse_poll(rest)
    if isinstance(parsed, c.PollOpen):
        # Whatever it accepts, the wire takes.
        m.PollOpen(1, "cs101", parsed.question, parsed.options, m.POLL_ANONYMOUS if parsed.anonymous else 0)


@given(
    st.sampled_from(["hand", "queue", "next", "done", "poll", "vote", "quiet", "session", "export"]),
    st.text(max_size=120),
)
def test_parse_never_raises_on_any_classroom_arguments(name: str, rest: str) -> None:
    c.parse(f"/{name} {rest}")
