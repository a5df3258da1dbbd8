"""Smoke test of `labchat-bench --relays`: tiny numbers, asserting behaviour, not speed."""

from __future__ import annotations

import importlib.util
import json

import pytest

from labchat.bench import cli

#: --max-time is what the bench plans its rows by (each cluster row reserves about 40 s and skips
#: itself if that is not left); it bounds a slow machine's run, not a quick one's.
pytestmark = pytest.mark.timeout(330)
FAST = ["--ceiling-seconds", "0.1", "--login-pace", "1000", "--max-time", "300", "--json"]


def test_relays_rows_beside_the_single_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--relays", "1,2", "--clients", "4", "--rate", "10", "--duration", "1", *FAST]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "relays"
    single, *cluster = out["rows"]
    assert single["relays"] == 0 and single["label"] == "single (SQLite)"
    if importlib.util.find_spec("labchat.server.backplane") is None:  # no cluster message path yet
        assert [n for n in out["notes"] if "not measured" in n] and not cluster
        return
    assert [row["relays"] for row in cluster] == [1, 2]
    for row in (single, *cluster):
        assert row["messages_sent"] >= 5 and row["messages_confirmed"] == row["messages_sent"]
        assert row["deliveries"] == row["deliveries_expected"] == 3 * row["messages_sent"]
        assert row["lost"] == 0 and row["duplicated"] == 0
    for row in cluster:
        assert row["vs_single"] > 0 and row["nats_cpu"] is not None and row["busiest_relay_cpu"] is not None


def test_relays_flag_refuses_bad_counts_and_other_modes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--relays", "0,2"]) == 2
    assert "each count must be 1-16" in capsys.readouterr().err
    assert cli.main(["--relays", "two"]) == 2
    assert "--relays wants relay counts" in capsys.readouterr().err
    assert cli.main(["--mode", "ramp", "--relays", "2"]) == 2
    assert "--relays chooses the relays mode" in capsys.readouterr().err
