"""The server log shows a long message cut short, with its length, not in full."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from labchat.protocol import events as ev

from ..protocol.sim import SimNet


def test_long_message_is_logged_as_an_excerpt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    net = SimNet(tmp_path)
    alice = net.add_client("alice")
    net.run_until(lambda: net.logged_in("alice"))
    with caplog.at_level(logging.INFO, logger="labchat.server.relay"):
        alice.conn.say("é" * 450, net.now)  # 900 bytes, 450 characters
        alice.conn.say("short one", net.now)
        net.run_until(lambda: len(alice.of(ev.MessageDelivered)) == 2)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("<alice>")]
    assert lines[0].startswith("<alice> " + "é" * 200 + "… (450 chars)")
    assert "é" * 201 not in lines[0]
    assert lines[1].startswith("<alice> short one ")
