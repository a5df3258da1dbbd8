"""Run labchat's real commands as processes, as a user or a script would, with bounded waits."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

PYTHON = sys.executable


def env_for(tmp_path: Path, password: str | None = "secret") -> dict[str, str]:
    env = dict(os.environ)
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"
    env.pop("LABCHAT_PASSWORD", None)
    if password is not None:
        env["LABCHAT_PASSWORD"] = password
    return env


class Proc:
    """A child process whose stdout lines we can await."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._new = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))
            self._new.set()
        self._new.set()

    async def expect(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait for a stdout line matching `pattern` (a regex searched in each line)."""
        regex = re.compile(pattern)

        async def scan() -> re.Match[str]:
            start = 0
            while True:
                for i in range(start, len(self.lines)):
                    if match := regex.search(self.lines[i]):
                        return match
                start = len(self.lines)
                if self._reader.done():
                    raise AssertionError(f"process ended without {pattern!r}; output: {self.lines}")
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(scan(), timeout)

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The `--json` events of this `type` printed so far, in order (other lines skipped)."""
        out = []
        for line in self.lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and obj.get("type") == kind:
                out.append(obj)
        return out

    def mark(self) -> int:
        """Where the output is now: `expect_json(since=mark)` looks only at what comes after."""
        return len(self.lines)

    async def expect_json(self, timeout: float = 10.0, *, since: int = 0, **fields: Any) -> dict[str, Any]:
        """The first `--json` event (from line `since` on) whose fields have these values."""

        async def scan() -> dict[str, Any]:
            seen = since
            while True:
                for line in self.lines[seen:]:
                    seen += 1
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if all(obj.get(k) == v for k, v in fields.items()):
                        return obj
                if self._reader.done():
                    raise AssertionError(f"no JSON event with {fields}; output: {self.lines}")
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(scan(), timeout)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    async def wait(self, timeout: float = 10.0) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(self._reader, timeout)
        return code

    async def stderr(self) -> str:
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def spawn(*args: str, env: dict[str, str]) -> Proc:
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    return Proc(proc)


async def spawn_server(tmp_path: Path, db: Path, *extra: str, port: int = 0) -> Proc:
    """`labchat-server 127.0.0.1 -p PORT --db DB ...` as a process (not waited for)."""
    return await spawn(PYTHON, "-m", "labchat.server", "127.0.0.1", "-p", str(port), "--db", str(db),
                       *extra, env=env_for(tmp_path, None))  # fmt: skip


async def start_server_proc(
    tmp_path: Path, *extra: str, db: Path | None = None, port: int = 0
) -> tuple[Proc, int]:
    """Start a server (port 0: any free one) and wait for its banner; returns it and its port."""
    server = await spawn_server(tmp_path, db or tmp_path / "server.db", *extra, port=port)
    match = await server.expect(r"listening on UDP 127\.0\.0\.1:(\d+)")
    return server, int(match.group(1))


async def start_client_proc(
    tmp_path: Path, port: int, user: str, *extra: str, password: str | None = "secret"
) -> Proc:
    return await spawn(
        PYTHON,
        "-m",
        "labchat.client",
        "127.0.0.1",
        str(port),
        "0",
        "--plain",
        "--user",
        user,
        *extra,
        env=env_for(tmp_path, password),
    )


async def join_through_loss(tmp_path: Path, port: int, user: str, *extra: str, attempts: int = 3) -> Proc:
    """A `--json` client through a lossy path, logged in (its first PRESENCE seen). The first
    connection has 5 s to reach LOGIN_OK (`connect_timeout_s`, docs/protocol.md's timers) and then
    says "no answer from the server"; at 20 % loss each way that happens about once in a few hundred
    starts, and a user then starts it again: so does this, up to `attempts` times, for that only."""
    for attempt in range(attempts):
        proc = await start_client_proc(tmp_path, port, user, "--json", *extra)
        try:
            await proc.expect_json(type="presence", timeout=30)
            return proc
        except AssertionError:
            if attempt == attempts - 1 or not any("no answer from the server" in line for line in proc.lines):
                raise
            await proc.kill()
    raise AssertionError("unreachable")
