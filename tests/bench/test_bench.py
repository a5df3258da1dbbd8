"""Smoke tests of `labchat-bench`: tiny loads for a second or two, asserting behaviour, not speed."""

from __future__ import annotations

import json
import socket

import pytest

from labchat.bench import cli
from labchat.bench.stats import Histogram

pytestmark = pytest.mark.timeout(60)
FAST = ["--ceiling-seconds", "0.1", "--login-pace", "1000", "--max-time", "45", "--json"]


def run_json(capsys: pytest.CaptureFixture[str], *args: str, max_time: float = 45) -> dict:
    """The mode's JSON report. `max_time` bounds the run: a mode stops early (with a note, fewer
    rows) once its next row would not fit, so a mode of several rows gets room for a loaded machine."""
    fast = [*FAST[:FAST.index("--max-time")], "--max-time", str(max_time), "--json"]
    assert cli.main([*args, *fast]) == 0
    return json.loads(capsys.readouterr().out)


def test_fixed_mode_delivers_everything_exactly_once(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "--mode", "fixed", "--clients", "3", "--rate", "30", "--duration", "1")
    assert out["mode"] == "fixed" and out["ceiling_sendto_s"] > 0
    (row,) = out["rows"]
    assert row["messages_sent"] > 0  # about 30; a loaded machine's pause at the end sends fewer
    assert row["messages_confirmed"] == row["messages_sent"]
    assert row["deliveries"] == row["deliveries_expected"] == 2 * row["messages_sent"]
    assert row["lost"] == 0 and row["duplicated"] == 0
    for key in ("p50", "p95", "p99", "max"):
        assert row["latency_ms"][key] is not None and row["latency_ms"][key] > 0
    for key in ("offered_msg_s", "delivered_msg_s", "deliveries_s", "server_cpu", "server_peak_mb",
                "server_kb_per_client", "ceiling_fraction"):
        assert row[key] is not None, key
    # The server's own share: how long each wake-up for datagrams kept it busy, wall and CPU.
    wall, cpu = row["server_wakeup_ms"], row["server_wakeup_cpu_ms"]
    assert cpu["p50"] > 0 and cpu["max"] <= wall["max"] * 1.05 + 0.01


@pytest.mark.timeout(200)
def test_ramp_steps_up_and_reports_the_best(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "--mode", "ramp", "--clients", "3", "--rate", "20", "--duration", "0.5",
                   "--ramp-steps", "2", max_time=150)
    rates = [r["rate"] for r in out["rows"]]
    assert rates == [20, 30]
    assert all(r["lost"] == 0 for r in out["rows"])
    # Which steps pass (p99 under 50 ms) is the machine's to say, not this test's: a loaded machine
    # may pass none. What holds on any machine: the best reported is a passing step, the last such.
    passing = [r for r in out["rows"] if r["passed"]]
    assert out["best"] == (passing[-1] if passing else None)


def test_idle_mode_measures_memory_and_keepalive_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "--mode", "idle", "--clients", "3", "--duration", "1")
    (row,) = out["rows"]
    assert row["server_online"] == 3
    assert row["server_kb_per_client"] is not None and row["server_cpu"] is not None


@pytest.mark.timeout(200)
def test_core_mode_times_the_sans_io_cores(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "--mode", "core", "--clients", "5", "--duration", "0.5", max_time=150)
    quiet, busy = out["rows"]
    assert (quiet["batch"], busy["batch"]) == (1, 5)
    assert busy["deliveries"] == 5 * quiet["deliveries"] == 5 * 20 * 4
    for row in (quiet, busy):
        assert row["core_server_us_per_delivery"] > 0 and row["core_client_us_per_delivery"] > 0
    # Pure Python and the compiled build (make fast) give different figures: every report says which.
    assert out["build"].startswith(("pure Python", "compiled (mypyc)"))
    assert f"labchat build: {out['build']}" in out["notes"]


@pytest.mark.timeout(200)
def test_curve_runs_each_size(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "--mode", "curve", "--sizes", "2,4", "--deliveries", "40",
                   "--duration", "0.5", max_time=150)
    assert [r["clients"] for r in out["rows"]] == [2, 4]
    assert all(r["lost"] == 0 and r["duplicated"] == 0 for r in out["rows"])


def test_tui_mode_drives_the_real_app(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--mode", "tui", "--duration", "1", "--rate", "50", *FAST])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    row = json.loads(captured.out)["rows"][0]
    assert row["tui"]["keys"] > 0


def test_bad_arguments_fail_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--clients", "1"]) == 2
    assert cli.main(["--server", "10.0.0.1:8080"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("labchat-bench: ") for line in err)


def test_bad_numbers_fail_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--processes", "-1"]) == 2
    assert cli.main(["--mode", "curve", "--deliveries", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["labchat-bench: --processes must be 0 (chosen by the load) or more",
                   "labchat-bench: --deliveries must be above 0"]


def test_no_server_at_the_given_port_is_one_line_within_seconds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free now, and nothing listens on it once closed
    assert cli.main(["--server", f"127.0.0.1:{port}", "--clients", "3", "--rate", "10",
                     "--duration", "1", "--ceiling-seconds", "0.1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"labchat-bench: no labchat server answered at 127.0.0.1:{port} within 5 s: "
                   "is it running, and is that its port?"]


def test_histogram_percentiles_and_merge() -> None:
    a, b = Histogram(), Histogram()
    for ms in range(1, 101):
        a.add(ms / 1000)
    b.add(0.5)
    p50, p99 = a.percentile(50), a.percentile(99)
    assert p50 is not None and p99 is not None
    assert 0.049 <= p50 <= 0.0515 and 0.098 <= p99 <= 0.101
    a.merge(Histogram.from_state(b.to_state()))
    assert a.n == 101 and a.max == 0.5 and a.percentile(100) == 0.5


@pytest.mark.timeout(200)
def test_flood_mode_measures_both_policies(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "--mode", "flood", "--clients", "10", "--rate", "40", "--duration", "0.75",
                   max_time=150)
    one_by_one, coalesced = out["rows"]
    assert (one_by_one["label"], coalesced["label"]) == ("one by one", "coalesced")
    for row in (one_by_one, coalesced):
        assert row["bots_logged_in"] == row["bots"] == 30
        assert row["server_peak_mb"] > 0 and row["db_mb"] > 0 and row["server_cpu_s"] > 0
    # 30 bots joining and leaving 10 members: one by one is ~2 x 30 x 25 frames; coalesced far fewer.
    assert coalesced["server_datagrams_out"] < one_by_one["server_datagrams_out"]


def test_login_storm_logs_everyone_in(capsys: pytest.CaptureFixture[str]) -> None:
    """A small class against the real scrypt cost: every client gets in, and they queued."""
    assert cli.main(["--mode", "login-storm", "--clients", "12", "--login-workers", "1",
                     "--duration", "40", "--json"]) == 0  # fmt: skip
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["logged_in"] == 12 and row["gave_up"] == 0 and row["refused"] == 0
    assert row["last_login_s"] >= row["first_login_s"] > 0
    assert row["server"]["password_checks"] == 12 and row["server"]["scrypt_n"] == 2**14
    assert row["queued_clients"] > 0


@pytest.mark.timeout(200)
def test_rooms_mode_spreads_the_clients_and_keeps_the_deliveries(capsys: pytest.CaptureFixture[str]) -> None:
    """One room, then 2 rooms at the rate that asks for the same deliveries/s, then the same with
    the server holding empty rooms too: every message reaches exactly the others of its room."""
    out = run_json(capsys, "--mode", "rooms", "--clients", "6", "--rooms", "2", "--held-rooms", "5",
                   "--rate", "10", "--duration", "1", max_time=150)  # fmt: skip
    one, spread, held = out["rows"]
    assert (one["rooms"], spread["rooms"], held["rooms"], held["held_rooms"]) == (1, 2, 2, 5)
    for row in (one, spread, held):
        assert row["lost"] == 0 and row["duplicated"] == 0 and row["messages_sent"] > 0
        assert row["messages_confirmed"] == row["messages_sent"]
    assert one["deliveries_expected"] == 5 * one["messages_sent"]  # 6 in one room: 5 others each
    assert spread["deliveries_expected"] == 2 * spread["messages_sent"]  # 3 per room: 2 others each
