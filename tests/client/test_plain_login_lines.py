"""Line-mode output for the login queue and a throttled re-login (extends the --plain/--json contract)."""

from __future__ import annotations

from labchat.client.plain import event_line, event_record
from labchat.protocol import events as ev
from labchat.protocol.errors import ErrorCode


def test_queued_and_retrying_lines() -> None:
    queued = event_line(ev.LoginQueued(37, 1.5), 0.0, "ana")
    assert queued is not None and queued.endswith("-!- waiting for the server: 37 ahead of you")
    assert str(event_line(ev.LoginQueued(0), 0.0, "ana")).endswith("waiting for the server: you are next")
    rec = event_record(ev.LoginQueued(3), 0.0)
    assert rec is not None and rec["state"] == "queued" and rec["position"] == 3
    line = event_line(ev.LoginRetrying(ErrorCode.LOGIN_THROTTLED, "too many failed logins", 6.0), 0.0, "ana")
    assert line is not None and line.endswith("refused for now (too many failed logins); retrying in 6 s")
