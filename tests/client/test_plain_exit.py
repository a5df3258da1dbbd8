"""Line mode's exit status from the events the client core reports, including a re-login that the
server holds back (LOGIN_THROTTLED) while the core keeps trying.

The events are fed through the real ChatClient's own event path; only the socket is left out, as
the server side of throttling is not what is tested here.
"""

from __future__ import annotations

import asyncio
import io
import json
import os

import pytest

from labchat.client.core import ChatClient
from labchat.client.plain import InputError, parse_input, run_plain
from labchat.protocol import events as ev
from labchat.protocol.errors import ErrorCode

pytestmark = pytest.mark.timeout(20)

LOGGED_IN = ev.LoggedIn("alice", "lobby", "lab", registered=False, resumed=False)
RESUMED = ev.LoggedIn("alice", "lobby", "lab", registered=False, resumed=True)
THROTTLED = ev.LoginRefused(ErrorCode.LOGIN_THROTTLED, "too many logins: wait 2 s")


async def exit_status(events: list[ev.Event]) -> tuple[int, list[dict[str, object]]]:
    """Run line mode with a stdin that stays open, feed `events`, return its status and output."""
    client = ChatClient("127.0.0.1", 9, "alice", "secret")
    read_fd, write_fd = os.pipe()
    out = io.StringIO()
    with open(read_fd, encoding="utf-8") as stdin:
        try:
            running = asyncio.create_task(run_plain(client, as_json=True, out=out, stdin=stdin))
            for event in events:
                client._on_event(event)
            code = await asyncio.wait_for(running, 10)
        finally:
            os.close(write_fd)  # end of input: the reader thread ends too
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


async def test_a_throttled_relogin_the_core_survives_is_not_fatal() -> None:
    code, out = await exit_status([
        LOGGED_IN,
        ev.StateChanged(ev.ConnectionState.RECONNECTING, "server not answering"),
        THROTTLED,
        RESUMED,
        ev.StateChanged(ev.ConnectionState.CONNECTED),
        ev.Closed("quit", 0),
    ])  # fmt: skip
    assert code == 0
    texts = [rec["text"] for rec in out]
    assert "connection lost: reconnecting…" in texts and texts.count("connection lost: reconnecting…") == 1
    assert any(t.startswith("reconnected as alice") for t in texts)
    assert "reconnected" not in texts  # the login said it already: not twice


async def test_a_throttled_relogin_the_core_gives_up_on_is_reported() -> None:
    gave_up = ev.Closed("too many logins", ErrorCode.LOGIN_THROTTLED)
    code, out = await exit_status([LOGGED_IN, THROTTLED, gave_up])
    assert code == 1
    assert out[-1]["state"] == "closed"


async def test_a_throttled_first_login_fails() -> None:
    code, out = await exit_status([THROTTLED, ev.Closed("too many logins", ErrorCode.LOGIN_THROTTLED)])
    assert code == 1
    assert [rec["type"] for rec in out] == ["error", "system"]
    assert out[-1]["text"] == "disconnected"  # the error said why: not twice


async def test_back_without_a_new_login_is_said_once() -> None:
    code, out = await exit_status([
        LOGGED_IN,
        ev.StateChanged(ev.ConnectionState.RECONNECTING, "server not answering"),
        ev.StateChanged(ev.ConnectionState.CONNECTED, rtt_s=0.01),
        ev.StateChanged(ev.ConnectionState.CONNECTED, rtt_s=0.02),
        ev.Closed("quit", 0),
    ])  # fmt: skip
    assert code == 0
    assert [rec["text"] for rec in out].count("reconnected") == 1


def test_input_lines() -> None:
    assert parse_input("hello\n", 3, as_json=True).ref == 3
    assert parse_input('{"text": "hi"}\n', 4, as_json=True).ref == 4
    item = parse_input('{"ref": "a-1", "text": "/who"}', 5, as_json=True)
    assert (item.ref, item.text, item.from_json) == ("a-1", "/who", True)
    assert parse_input('{"ref": 1}', 6, as_json=False).text == '{"ref": 1}'  # plain mode: just text
    bad_lines = [
        ('{"ref": 1', 7), ("{}", 7), ('{"ref": [1], "text": "x"}', 7), ('{"ref": NaN, "text": "x"}', 7),
        ('{"ref": 9}', 9),
    ]
    for bad, ref in bad_lines:
        with pytest.raises(InputError) as caught:
            parse_input(bad, 7, as_json=True)
        assert caught.value.ref == ref and "nothing sent" in str(caught.value)
