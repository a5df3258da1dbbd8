"""/search, /history and long lines in line mode, with the real commands as processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from .procs import start_client_proc, start_server_proc

pytestmark = pytest.mark.timeout(60)


async def test_search_history_and_a_long_line_in_line_mode(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path)
    alice = await start_client_proc(tmp_path, port, "alice")
    await alice.expect(r"logged in as alice")
    bob = await start_client_proc(tmp_path, port, "bob", "--json")
    await bob.expect_json(type="presence")
    for text in ("the build is red", "lunch at noon?", "build is green again"):
        alice.send(text)
    long_line = "word " * 1200  # 6000 bytes: one message, not seven
    alice.send(long_line)
    received = await bob.expect_json(type="message", user="alice", seq=4)
    assert received["text"] == long_line, bob.lines[-1][:300]
    assert received["seq"] == 4
    await server.expect(r"… \(6000 chars\)")  # the log shows its start only

    bob.send("/search BUILD")
    result = await bob.expect_json(type="search")
    assert [(h["seq"], h["user"], h["text"]) for h in result["hits"]] == [
        (3, "alice", "build is green again"),
        (1, "alice", "the build is red"),
    ]
    assert result["query"] == "BUILD" and result["more"] is False
    bob.send('/search "unbalanced AND *')
    assert (await bob.expect_json(type="search", query='"unbalanced AND *'))["hits"] == []

    alice.send("/search lunch")
    await alice.expect(r"-!- 1 results for 'lunch', newest first$")
    await alice.expect(r"^\d\d:\d\d:\d\d \[#2\] <alice> lunch at noon\?$")
    alice.send("/history 2")
    await alice.expect(r"-!- no older messages$")  # alice was there from the start: nothing older

    carol = await start_client_proc(tmp_path, port, "carol", "--json")
    await carol.expect_json(type="presence")
    carol.send("/history")
    page = await carol.expect_json(type="history")
    assert page["messages"] == [] and page["more"] is False  # all four were shown on join

    for proc in (alice, bob, carol):
        proc.send("QUIT")
        assert await proc.wait() == 0
    server.proc.terminate()
    assert await server.wait() == 0
