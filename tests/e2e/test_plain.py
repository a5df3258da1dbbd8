"""The installed commands as processes: a server and `--plain` clients chatting on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
from pathlib import Path

import pytest

from .procs import PYTHON, Proc, env_for, spawn, spawn_server, start_client_proc, start_server_proc

pytestmark = pytest.mark.timeout(60)


async def test_chat_between_plain_clients(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path)
    alice = await start_client_proc(tmp_path, port, "alice")
    await alice.expect(r"logged in as alice")
    bob = await start_client_proc(tmp_path, port, "bob")
    await bob.expect(r"-!- 2 online: alice, bob")
    await alice.expect(r"^\d\d:\d\d:\d\d \* bob joined$")
    carol = await start_client_proc(tmp_path, port, "carol")
    await carol.expect(r"3 online")

    alice.send("Selamat pagi semuanya 👋")
    for other in (bob, carol):
        await other.expect(r"^\d\d:\d\d:\d\d <alice> Selamat pagi semuanya 👋$")
    await alice.expect(r"<alice> Selamat pagi semuanya 👋")  # confirmed by the server
    await server.expect(r"forwarded to 2")

    bob.send("QUIT")
    assert await bob.wait() == 0
    await alice.expect(r"\* bob left$")
    await carol.expect(r"\* bob left$")
    await server.expect(r"bob left")

    carol.close_stdin()  # end of input leaves too
    assert await carol.wait() == 0
    await alice.expect(r"\* carol left$")
    alice.send("/quit")
    assert await alice.wait() == 0
    server.proc.terminate()
    assert await server.wait() == 0


async def test_json_events(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path)
    alice = await start_client_proc(tmp_path, port, "alice", "--json")
    presence = await alice.expect_json(type="presence")
    assert presence["users"] == ["alice"]
    bob = await start_client_proc(tmp_path, port, "bob", "--json")
    joined = await alice.expect_json(type="join", user="bob")
    assert joined["text"] == "bob joined" and "T" in joined["ts"]
    bob.send("hi alice")
    msg = await alice.expect_json(type="message", user="bob")
    assert msg["text"] == "hi alice" and msg["seq"] >= 1
    bob.send("/msg alice secret")
    private = await alice.expect_json(type="private")
    assert (private["user"], private["to"], private["text"]) == ("bob", "alice", "secret")
    bob.send("/me waves")
    action = await alice.expect_json(type="message", action=True)
    assert action["text"] == "waves"
    bob.send("/bogus")
    err = await bob.expect_json(type="error")
    assert "unknown command" in err["text"]
    for p in (alice, bob):
        p.send("QUIT")
        assert await p.wait() == 0
    await server.kill()


async def test_wrong_password_and_closed_registration(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path, "--registration", "closed")
    stranger = await start_client_proc(tmp_path, port, "mallory")
    await stranger.expect(r"error: Registration is closed")
    assert await stranger.wait() == 1
    await server.kill()
    admin_env = env_for(tmp_path, "rightpass")
    add = await spawn(
        PYTHON,
        "-m",
        "labchat.server.admin",
        "--db",
        str(tmp_path / "server.db"),
        "add",
        "alice",
        env=admin_env,
    )
    assert await add.wait() == 0
    server, port = await start_server_proc(tmp_path, "--registration", "closed")
    wrong = await start_client_proc(tmp_path, port, "alice", password="wrongpass")
    await wrong.expect(r"error: Invalid password")
    assert await wrong.wait() == 1
    right = await start_client_proc(tmp_path, port, "alice", password="rightpass")
    await right.expect(r"logged in as alice")
    right.send("QUIT")
    assert await right.wait() == 0
    await server.kill()


async def test_garbage_datagrams_do_not_stop_the_chat(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path)
    alice = await start_client_proc(tmp_path, port, "alice")
    await alice.expect(r"logged in as alice")
    bob = await start_client_proc(tmp_path, port, "bob")
    await alice.expect(r"bob joined")
    junk = [
        b"",
        b"LC",
        b"LC\x01\x04" + b"\x00" * 40,
        b"\xff" * 1500,
        os.urandom(300),
        b"LC\x09\x01hello",
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(500):
            sock.sendto(junk[i % len(junk)] + os.urandom(i % 7), ("127.0.0.1", port))
            if i == 250:
                alice.send("still here")
    await bob.expect(r"<alice> still here")
    bob.send("me too")
    await alice.expect(r"<bob> me too")
    await server.expect(r"dropped datagrams in the last", timeout=15)
    for p in (alice, bob):
        p.send("QUIT")
        assert await p.wait() == 0
    server.proc.terminate()
    assert await server.wait() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-an-ip.invalid", "8080", "0"], "cannot resolve server address"),
        (["127.0.0.1", "70000", "0"], "invalid server port"),
        (["127.0.0.1", "8080", "-1"], "invalid client port"),
        (["127.0.0.1", "8080", "0", "--plain", "--user", "9bad"], "invalid user name"),
        (["127.0.0.1", "8080", "0", "--plain"], "--plain needs --user"),
        (["127.0.0.1", "eighty", "0"], "invalid int value"),
    ],
)
async def test_bad_client_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    proc = await spawn(PYTHON, "-m", "labchat.client", *args, env=env_for(tmp_path))
    code = await proc.wait()
    err = await proc.stderr()
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


async def test_client_port_in_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        proc = await spawn(
            PYTHON,
            "-m",
            "labchat.client",
            "127.0.0.1",
            "9",
            str(busy),
            "--plain",
            "--user",
            "alice",
            env=env_for(tmp_path),
        )
        assert await proc.wait() == 1
        err = await proc.stderr()
    assert f"client port {busy} is already in use" in err and "Traceback" not in err


async def test_server_not_answering(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        proc = await start_client_proc(tmp_path, port, "alice")
        await proc.expect(r"error: no answer from the server within", timeout=15)
        assert await proc.wait() == 1


async def test_server_bad_database_and_port_in_use(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    proc = await spawn_server(tmp_path, tmp_path / "dir.db")
    assert await proc.wait() == 1
    err = await proc.stderr()
    assert "cannot open database" in err and "Traceback" not in err
    (tmp_path / "junk.db").write_bytes(b"this is not a database" * 100)
    proc = await spawn_server(tmp_path, tmp_path / "junk.db")
    assert await proc.wait() == 1
    assert "cannot open database" in await proc.stderr()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        proc = await spawn_server(tmp_path, tmp_path / "ok.db", port=taken.getsockname()[1])
        assert await proc.wait() == 1
        assert "already in use" in await proc.stderr()


async def test_sigterm_tells_clients(tmp_path: Path) -> None:
    server, port = await start_server_proc(tmp_path)
    alice = await start_client_proc(tmp_path, port, "alice")
    await alice.expect(r"logged in as alice")
    server.proc.terminate()
    assert await server.wait() == 0
    await alice.expect(r"server is shutting down")
    alice.send("QUIT")
    assert await asyncio.wait_for(alice.wait(), 15) in (0, 1)


async def test_piped_script(tmp_path: Path) -> None:
    """`printf 'hello\\nQUIT\\n' | labchat ... --plain`: the line arrives, then the leave."""
    server, port = await start_server_proc(tmp_path)
    watcher = await start_client_proc(tmp_path, port, "watcher")
    await watcher.expect("logged in")
    bot = await start_client_proc(tmp_path, port, "bot")
    bot.send("hello from a script")
    bot.send("QUIT")
    assert await bot.wait() == 0
    await watcher.expect(r"<bot> hello from a script")
    await watcher.expect(r"\* bot left$")
    watcher.send("QUIT")
    await watcher.wait()
    await server.kill()


async def test_exit_status_tells_the_truth(tmp_path: Path) -> None:
    """End of input at once still logs in first: 0 only after a login, 1 without one, 2 for usage."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        nobody = await start_client_proc(tmp_path, silent.getsockname()[1], "alice")
        nobody.close_stdin()  # as `</dev/null`
        assert await nobody.wait(15) == 1
    assert any("error: no answer from the server within" in line for line in nobody.lines)
    assert not any("logged in" in line for line in nobody.lines)

    server, port = await start_server_proc(tmp_path)
    first = await start_client_proc(tmp_path, port, "alice", password="rightpass")
    first.close_stdin()
    assert await first.wait() == 0
    assert any("logged in as alice" in line for line in first.lines)
    await server.expect(r"alice left")

    wrong = await start_client_proc(tmp_path, port, "alice", password="wrongpass")
    wrong.close_stdin()
    assert await wrong.wait() == 1
    assert any("error: Invalid password" in line for line in wrong.lines)
    # The reason is said once, by the error line; the last line only says it is over.
    assert sum("Invalid password" in line for line in wrong.lines) == 1
    assert wrong.lines[-1].endswith("-!- disconnected")

    usage = await start_client_proc(tmp_path, port, "alice", "--no-such-flag")
    assert await usage.wait() == 2
    await server.kill()


async def test_json_refs_and_own_name(tmp_path: Path) -> None:
    """Every input line's ref comes back on the events it causes; our own messages name us."""
    server, port = await start_server_proc(tmp_path)
    bob = await start_client_proc(tmp_path, port, "bob", "--json")
    await bob.expect_json(type="presence")
    bot = await start_client_proc(tmp_path, port, "bot", "--json")
    await bot.expect_json(type="presence")

    bot.send("hello")  # line 1: its ref is its line number
    own = await bot.expect_json(type="message", own=True, text="hello")
    assert (own["user"], own["ref"]) == ("bot", 1)
    bot.send('{"ref": "p-1", "text": "/msg bob psst"}')  # line 2
    private = await bot.expect_json(type="private", ref="p-1")
    assert (private["user"], private["to"], private["text"], private["own"]) == ("bot", "bob", "psst", True)
    bot.send('{"ref": 42, "text": "/who"}')  # line 3
    who = await bot.expect_json(type="presence", ref=42)
    assert who["users"] == ["bob", "bot"]
    bot.send('{"ref": "c", "text": "/bogus"}')  # line 4
    assert "unknown command" in (await bot.expect_json(type="error", ref="c"))["text"]
    bot.send('{"ref": "n", "text": "/msg nobody hi"}')  # line 5: refused by the server
    assert "nobody" in (await bot.expect_json(type="error", ref="n"))["text"]
    bot.send('{"ref": 7, "text": ')  # line 6: broken JSON, nothing sent
    broken = await bot.expect_json(type="error", ref=6)
    assert "not valid JSON" in broken["text"]
    bot.send('{"ref": "a", "text": "/away lunch"}')  # line 7: answered by the room's away echo
    assert (await bot.expect_json(type="away", user="bot"))["reason"] == "lunch"
    bot.send('{"ref": "e", "text": "  "}')  # line 8: nothing to send, and said so
    assert "nothing sent" in (await bot.expect_json(type="error", ref="e"))["text"]
    bot.send('{"ref": "t"}')  # line 9: no text
    assert '"text"' in (await bot.expect_json(type="error", ref="t"))["text"]
    long_text = " ".join(f"word{i}" for i in range(400))
    bot.send(json.dumps({"ref": "long", "text": long_text}))  # line 10: one long message (protocol.md 15)
    bot.send("done")  # line 11
    await bot.expect_json(type="message", own=True, text="done", ref=11)
    assert not [line for line in bot.lines if '"ref": "a"' in line and '"type": "error"' in line]
    pieces = [json.loads(line) for line in bot.lines if '"own": true' in line and '"type": "message"' in line]
    long_pieces = [p for p in pieces if p["text"].startswith("word") or p.get("ref") == "long"]
    assert len(long_pieces) == 1 and {p["ref"] for p in long_pieces} == {"long"}
    assert " ".join(p["text"] for p in long_pieces) == long_text
    # Others see nothing of refs: they are the sender's business.
    seen = await bob.expect_json(type="message", text="hello")
    assert "ref" not in seen and seen["user"] == "bot" and seen["own"] is False
    await bob.expect_json(type="message", text="done")
    assert not any("not valid JSON" in line or "/bogus" in line for line in bob.lines)
    for p in (bob, bot):
        p.send("QUIT")
        assert await p.wait() == 0
    await server.kill()


async def test_plain_json_input_is_text(tmp_path: Path) -> None:
    """Without --json a line starting with `{` is just text: plain mode's contract does not change."""
    server, port = await start_server_proc(tmp_path)
    alice = await start_client_proc(tmp_path, port, "alice")
    await alice.expect("logged in")
    alice.send('{"text": "not parsed"}')
    await alice.expect(r'<alice> \{"text": "not parsed"\}$')
    alice.send("QUIT")
    assert await alice.wait() == 0
    await server.kill()


async def test_reconnect_is_said_once(tmp_path: Path) -> None:
    """A lost server is reported once, plainly, and its return too."""
    db = tmp_path / "server.db"
    server, port = await start_server_proc(tmp_path, db=db)
    alice = await start_client_proc(tmp_path, port, "alice")
    await alice.expect("logged in")
    server.proc.send_signal(signal.SIGKILL)
    await server.wait()
    alice.send("are you there?")  # unanswered: the client notices the silence at once
    await alice.expect(r"-!- connection lost: reconnecting…$", timeout=15)
    alice.send("typed meanwhile")
    restarted, _ = await start_server_proc(tmp_path, db=db, port=port)
    await alice.expect(r"-!- reconnected", timeout=30)
    await alice.expect(r"<alice> are you there\?$", timeout=15)
    # Said while offline: the line tells when it was typed, not only when it reached the room.
    await alice.expect(r"<alice> typed meanwhile \(typed \d\d:\d\d:\d\d, while offline\)$", timeout=15)
    alice.send("QUIT")
    assert await alice.wait(15) == 0
    lost = [line for line in alice.lines if "connection lost" in line]
    assert len(lost) == 1
    for line in alice.lines:
        words = line.replace(";", " ").replace(",", " ").split()
        assert not any(a == b for a, b in itertools.pairwise(words)), line
        assert "reconnecting; reconnecting" not in line
    await restarted.kill()


async def test_output_in_a_legacy_encoding(tmp_path: Path) -> None:
    """A pipe that cannot carry an emoji (Windows' cp1252, an ASCII locale): JSON stays exact with
    escapes, plain text shows "?", and neither fails."""
    server, port = await start_server_proc(tmp_path)
    ascii_env = env_for(tmp_path) | {"PYTHONIOENCODING": "ascii"}

    async def ascii_client(user: str, *extra: str) -> Proc:
        return await spawn(PYTHON, "-m", "labchat.client", "127.0.0.1", str(port), "0", "--plain",
                           "--user", user, *extra, env=ascii_env)  # fmt: skip

    bot = await ascii_client("bot", "--json")
    await bot.expect_json(type="presence")
    reader = await ascii_client("reader")
    await reader.expect("logged in")
    alice = await start_client_proc(tmp_path, port, "alice")
    await alice.expect("logged in")
    alice.send("Selamat pagi 👋 café")
    got = await bot.expect_json(type="message", user="alice")
    assert got["text"] == "Selamat pagi 👋 café"
    await reader.expect(r"<alice> Selamat pagi \? caf\?$")
    for p in (bot, reader, alice):
        p.send("QUIT")
        assert await p.wait() == 0
    assert "Traceback" not in await bot.stderr() + await reader.stderr()
    await server.kill()
