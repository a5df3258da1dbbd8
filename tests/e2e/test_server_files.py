"""The server's files and history limits, as an operator meets them: real processes, real files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from labchat.server.store import Store, StoredMessage

from .procs import spawn_server, start_client_proc, start_server_proc

pytestmark = pytest.mark.timeout(60)
posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")


@posix_only
async def test_fresh_server_files_are_owner_only_and_open_ones_are_reported(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    server, port = await start_server_proc(tmp_path, db=data / "server.db")
    client = await start_client_proc(tmp_path, port, "ana")
    await client.expect(r"\* ana joined|online")
    client.send("QUIT")
    assert await client.wait() == 0
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()}
    assert {"server.db", "server.key"} <= set(files) and set(files.values()) == {0o600}
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    await server.kill()
    # An operator widened them: the next start tightens the database, names the directory's chmod.
    os.chmod(data / "server.db", 0o644)
    os.chmod(data, 0o755)
    server, _ = await start_server_proc(tmp_path, db=data / "server.db")
    await server.expect(r"made it 600", timeout=10)
    await server.expect(r"chmod 700", timeout=10)
    assert stat.S_IMODE((data / "server.db").stat().st_mode) == 0o600
    await server.kill()


async def test_damaged_database_stops_the_server_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    store = Store(db, scrypt_n=2**10)
    store.append_messages(
        [StoredMessage("lobby", i, i, "ana", "x" * 300, 0, i) for i in range(1, 2001)], ["ana"] * 2000
    )
    store.close()
    data = bytearray(db.read_bytes())
    data[-4096:] = b"\x5a" * 4096
    db.write_bytes(bytes(data))
    server = await spawn_server(tmp_path, db)
    assert await server.wait() == 1
    err = (await server.stderr()).strip()
    assert err.startswith("labchat-server: cannot open database") and "\n" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize("flags", [["--history-days", "-1"], ["--history-max-mb", "nan"],
                                   ["--history-days", "x"]])
async def test_bad_history_limits_are_one_line_usage_errors(tmp_path: Path, flags: list[str]) -> None:
    server = await spawn_server(tmp_path, tmp_path / "server.db", *flags)
    assert await server.wait() == 2
    err = (await server.stderr()).strip()
    assert err.startswith("labchat-server: ") and "--history" in err and "\n" not in err
