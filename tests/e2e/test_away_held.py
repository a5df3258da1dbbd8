"""Away and held private messages as users see them: a server and `--plain`/`--json` clients as processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from .procs import start_client_proc, start_server_proc

pytestmark = pytest.mark.timeout(60)


async def test_away_shows_in_who_and_as_a_notice_on_msg(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path)
    alice = await start_client_proc(tmp_path, port, "alice")
    await alice.expect(r"logged in as alice")
    bob = await start_client_proc(tmp_path, port, "bob")
    await bob.expect(r"2 online")
    bob.send("/away lunch")
    await bob.expect(r"^\d\d:\d\d:\d\d \* bob is away: lunch$")
    await alice.expect(r"^\d\d:\d\d:\d\d \* bob is away: lunch$")
    await server.expect(r"bob is away: lunch")
    alice.send("/who")
    await alice.expect(r"-!- 2 online: alice, bob \(away: lunch\)$")
    alice.send("/msg bob are you there?")
    alice.send("/msg bob hello?")
    await bob.expect(r"\[private\] <alice> hello\?$")
    await alice.expect(r"\[private -> bob\] <alice> hello\?$")
    assert sum("bob is away: lunch" in line and "-!-" in line for line in alice.lines) == 1
    bob.send("/back")
    await alice.expect(r"\* bob is back$")
    alice.send("/who")
    await alice.expect(r"-!- 2 online: alice, bob$")
    for p in (alice, bob):
        p.send("QUIT")
        assert await p.wait() == 0
    await server.kill()


async def test_private_message_to_an_offline_user_is_delivered_at_login(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path)
    bob = await start_client_proc(tmp_path, port, "bob")
    await bob.expect(r"logged in as bob")
    bob.send("QUIT")
    assert await bob.wait() == 0  # bob has an account now, and is gone

    alice = await start_client_proc(tmp_path, port, "alice", "--json")
    await alice.expect_json(type="presence")
    alice.send("/msg bob see you at 3")
    notice = await alice.expect_json(type="system", text="bob is offline: will be delivered when bob returns")
    assert notice["user"] is None
    mine = await alice.expect_json(type="private", own=True)
    assert mine["to"] == "bob"
    await server.expect(r"held: bob is offline")

    bob = await start_client_proc(tmp_path, port, "bob", "--json")
    got = await bob.expect_json(type="private", user="alice")
    assert (got["text"], got["held"], got["ts"]) == ("see you at 3", True, mine["ts"])
    await server.expect(r"bob: 1 held private message\(s\) delivered")
    for p in (alice, bob):
        p.send("QUIT")
        assert await p.wait() == 0
    await server.kill()
