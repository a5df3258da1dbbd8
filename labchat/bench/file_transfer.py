"""`labchat-bench --mode file`: a file through the real server, beside a plain TCP copy, and chat meanwhile.

What docs/protocol.md 21 promises, measured end to end with the real commands on 127.0.0.1:

1. **A plain TCP copy** of the same file over loopback (one connection, 1 MiB reads and `sendall`,
   written to disk on the other side): the reference every labchat row is divided by, measured in the
   same run, so the ratio means something on any machine.
2. **The file through labchat**: a real `labchat-server` process and two line-mode clients
   (`labchat ... --json`) as processes; the sender types `/send PATH`, the receiver `/accept ID` as
   soon as the offer shows. Timed from the `/send` to the receiver's `file_done` (saved, SHA-256
   checked); the upload's own `file_done` is reported too.
3. **The same at 2 % loss** each way, through a `labchat-netem` process between clients and server.
4. **Chat during the transfer**: the receiver sends a chat line every `chat_interval_s` for the whole
   run; the sender's delay to each line (from the moment the bench hands it to the receiver to the
   moment the sender prints it) is split into lines sent while the file streamed and lines sent
   without it: before it started and, as long again, after it ended (the reference, taken on both
   sides so that a host whose load drifts does not bias it). Section 21.7 asks that the p99 during
   the transfer be at most twice the reference's.

Everything is bounded by `max_s`; every process is killed on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .stats import Histogram

MIB = 1024 * 1024
PYTHON = sys.executable
#: The password the bench's throwaway accounts use (a throwaway database: nothing to protect).
PASSWORD = "bench-password"


@dataclass
class FileRow:
    """One labchat transfer: seconds, MB/s, and the chat delays without and during it."""

    label: str
    loss: float
    size: int
    upload_s: float | None = None
    total_s: float | None = None
    verified: bool = False
    #: Chat with no file: the lines sent before it started and those sent after it ended (as long
    #: again), together: the reference of the p99 ratio, taken on both sides of the transfer so
    #: that a host whose load drifts during the run does not bias it.
    chat_reference_ms: dict[str, float | None] = field(default_factory=dict)
    chat_before_ms: dict[str, float | None] = field(default_factory=dict)
    chat_after_ms: dict[str, float | None] = field(default_factory=dict)
    chat_during_ms: dict[str, float | None] = field(default_factory=dict)
    #: The lines of `chat_during_ms` split by phase: while the file went up to the server, and
    #: while it came down to the receiver (each phase loads different processes).
    chat_upload_ms: dict[str, float | None] = field(default_factory=dict)
    chat_download_ms: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None

    @property
    def mb_s(self) -> float | None:
        return self.size / MIB / self.total_s if self.total_s else None


@dataclass
class FileReport:
    size: int
    tcp_s: float
    rows: list[FileRow]
    chat_interval_s: float = 0.05

    @property
    def tcp_mb_s(self) -> float:
        return self.size / MIB / self.tcp_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": "file",
            "size_bytes": self.size,
            "chat_interval_s": self.chat_interval_s,
            "cpus": os.cpu_count(),
            "tcp_copy": {"seconds": self.tcp_s, "mb_s": self.tcp_mb_s},
            "rows": [
                {
                    "label": r.label, "loss": r.loss, "upload_s": r.upload_s, "total_s": r.total_s,
                    "mb_s": r.mb_s, "of_tcp": (r.mb_s / self.tcp_mb_s) if r.mb_s else None,
                    "verified": r.verified, "chat_reference_ms": r.chat_reference_ms,
                    "chat_before_ms": r.chat_before_ms, "chat_after_ms": r.chat_after_ms,
                    "chat_during_ms": r.chat_during_ms, "chat_upload_ms": r.chat_upload_ms,
                    "chat_download_ms": r.chat_download_ms, "error": r.error,
                }
                for r in self.rows
            ],
        }


# ------------------------------------------------------------ the reference: a plain TCP copy


def tcp_copy(source: Path, target: Path, chunk: int = MIB) -> float:
    """Copy `source` to `target` through one loopback TCP connection; seconds, first byte to last
    written. The receiver is a thread: file I/O and sockets release the GIL, as in two processes."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    done = threading.Event()

    def receive() -> None:
        conn, _ = listener.accept()
        with conn, target.open("wb") as out:
            while data := conn.recv(chunk):
                out.write(data)
        done.set()

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock, source.open("rb") as f:
        while data := f.read(chunk):
            sock.sendall(data)
    done.wait(600)
    elapsed = time.perf_counter() - started
    listener.close()
    return elapsed


# ------------------------------------------------------------ processes


class LineProc:
    """A child process whose stdout lines are read as they come (JSON where they parse)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[tuple[float, str]] = []  # (time.time() when read, line)
        self._new = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.on_json: Any = None  # optional callback(obj, read_at)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            now = time.time()
            text = line.decode("utf-8", "replace").rstrip("\n")
            self.lines.append((now, text))
            if self.on_json is not None and text.startswith("{"):
                with contextlib.suppress(ValueError):
                    self.on_json(json.loads(text), now)
            self._new.set()
        self._new.set()

    async def expect(self, pattern: str, timeout: float) -> re.Match[str]:
        regex = re.compile(pattern)
        seen = 0

        async def scan() -> re.Match[str]:
            nonlocal seen
            while True:
                for _, line in self.lines[seen:]:
                    seen += 1
                    if match := regex.search(line):
                        return match
                if self._reader.done():
                    raise RuntimeError(f"process ended before {pattern!r}: {self.tail()}")
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def expect_json(self, timeout: float, **fields: Any) -> dict[str, Any]:
        seen = 0

        async def scan() -> dict[str, Any]:
            nonlocal seen
            while True:
                for _, line in self.lines[seen:]:
                    seen += 1
                    if not line.startswith("{"):
                        continue
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if all(obj.get(k) == v for k, v in fields.items()):
                        return dict(obj)
                if self._reader.done():
                    raise RuntimeError(f"process ended before {fields}: {self.tail()}")
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(scan(), timeout)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())

    def tail(self) -> str:
        return " | ".join(line for _, line in self.lines[-5:])

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


async def _spawn(*args: str, env: dict[str, str]) -> LineProc:
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, env=env,
    )
    return LineProc(proc)


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["XDG_DATA_HOME"] = str(home / "data")
    env["XDG_CONFIG_HOME"] = str(home / "config")
    env["PYTHONUNBUFFERED"] = "1"
    env["LABCHAT_PASSWORD"] = PASSWORD
    env["LABCHAT_LANG"] = "en"
    env["LANG"] = "C.UTF-8"
    return env


# ------------------------------------------------------------ one labchat transfer


async def _transfer(row: FileRow, source: Path, digest: str, work: Path, *, chat_interval_s: float,
                    chat_lead_s: float, max_s: float) -> None:
    """Run one transfer (see the module docstring) and fill `row`."""
    env = _env(work)
    big = str(max(1, row.size // MIB * 2))
    procs: list[LineProc] = []
    try:
        server = await _spawn(PYTHON, "-m", "labchat.server", "127.0.0.1", "-p", "0", "--db",
                              str(work / "server.db"), "--quiet", "--max-file-mb", big, "--quota-mb",
                              big, "--lang", "en", env=env)  # fmt: skip
        procs.append(server)
        port = int((await server.expect(r"listening on UDP 127\.0\.0\.1:(\d+)", 30)).group(1))
        target_port = port
        if row.loss:
            netem = await _spawn(PYTHON, "-m", "labchat.netem", "--listen", "127.0.0.1:0", "--server",
                                 f"127.0.0.1:{port}", "--loss", str(row.loss), "--seed", "21",
                                 env=env)  # fmt: skip
            procs.append(netem)
            target_port = int((await netem.expect(r"listening on \S*:(\d+)", 30)).group(1))
        downloads = work / "downloads"

        def client(user: str, *extra: str) -> list[str]:
            return [PYTHON, "-m", "labchat.client", "127.0.0.1", str(target_port), "0", "--json",
                    "--user", user, "--lang", "en", *extra]  # fmt: skip

        sender = await _spawn(*client("ana"), env=env)
        procs.append(sender)
        await sender.expect_json(30, type="presence")
        receiver = await _spawn(*client("budi", "--downloads", str(downloads)), env=env)
        procs.append(receiver)
        await receiver.expect_json(30, type="presence")

        # Chat from the receiver to the room; the sender (whose link carries the upload) reads it.
        sent_at: dict[int, float] = {}
        delays: list[tuple[float, float]] = []  # (sent at, delay s)
        pattern = re.compile(r"^chat (\d+)$")

        def on_json(obj: dict[str, Any], read_at: float) -> None:
            if obj.get("type") == "message" and obj.get("user") == "budi":
                match = pattern.match(str(obj.get("text", "")))
                if match and (at := sent_at.get(int(match.group(1)))) is not None:
                    delays.append((at, read_at - at))

        sender.on_json = on_json
        stop_chat = asyncio.Event()

        async def chat() -> None:
            n = 0
            while not stop_chat.is_set():
                n += 1
                sent_at[n] = time.time()
                receiver.send(f"chat {n}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop_chat.wait(), chat_interval_s)

        chatter = asyncio.create_task(chat())
        await asyncio.sleep(chat_lead_s)  # the reference: chat with no file (a measured interval)
        file_started = time.time()
        sender.send(f"/send {source}")
        offer = await receiver.expect_json(60, type="file_offer", name=source.name)
        receiver.send(f"/accept {offer['id']}")
        uploaded = await sender.expect_json(max_s, type="file_done", direction="up")
        uploaded_at = time.time()
        row.upload_s = uploaded_at - file_started
        done = await receiver.expect_json(max_s, type="file_done", direction="down")
        row.total_s = time.time() - file_started
        file_ended = time.time()
        await asyncio.sleep(chat_lead_s)  # the reference again: the host's load may drift meanwhile
        stop_chat.set()
        await chatter
        await asyncio.sleep(min(1.0, chat_lead_s))  # the last lines' echoes
        saved = Path(str(done.get("path", "")))
        row.verified = (
            uploaded.get("sha256") == digest and done.get("sha256") == digest
            and saved.is_file() and _sha256(saved) == digest
        )
        before, after, during, up, down = Histogram(), Histogram(), Histogram(), Histogram(), Histogram()
        reference = Histogram()
        for at, delay in delays:
            if at < file_started:
                before.add(delay)
                reference.add(delay)
            elif at < file_ended:
                during.add(delay)
                (up if at < uploaded_at else down).add(delay)
            else:
                after.add(delay)
                reference.add(delay)
        row.chat_reference_ms = _summary(reference)
        row.chat_before_ms = _summary(before)
        row.chat_after_ms = _summary(after)
        row.chat_during_ms = _summary(during)
        row.chat_upload_ms = _summary(up)
        row.chat_download_ms = _summary(down)
        with contextlib.suppress(OSError):
            saved.unlink()
    except (TimeoutError, RuntimeError, OSError) as exc:
        row.error = str(exc) or type(exc).__name__
    finally:
        for p in reversed(procs):
            await p.kill()


def _summary(h: Histogram) -> dict[str, float | None]:
    """Milliseconds, with the number of lines (`n`)."""
    return {"n": float(h.n), **h.summary_ms()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def make_file(path: Path, size: int) -> str:
    """Random bytes (incompressible), written in 1 MiB blocks; returns the SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left > 0:
            block = os.urandom(min(MIB, left))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return digest.hexdigest()


async def run_file_bench(size_mb: float = 200.0, losses: tuple[float, ...] = (0.0, 0.02), *,
                         chat_interval_s: float = 0.05, chat_lead_s: float = 3.0,
                         max_s: float = 900.0) -> FileReport:
    """The whole mode: the TCP reference, then one labchat transfer per loss rate."""
    size = int(size_mb * MIB)
    with tempfile.TemporaryDirectory(prefix="labchat-bench-file-") as tmp:
        work = Path(tmp)
        source = work / "payload.bin"
        digest = make_file(source, size)
        copy = work / "tcp-copy.bin"
        tcp_s = await asyncio.to_thread(tcp_copy, source, copy)
        copy.unlink()
        rows = []
        deadline = time.monotonic() + max_s
        for loss in losses:
            row = FileRow(f"labchat, {loss * 100:g} % loss", loss, size)
            left = deadline - time.monotonic()
            if left <= 0:
                row.error = "out of time (--max-time)"
            else:
                run_dir = work / f"run-{len(rows)}"
                run_dir.mkdir()
                try:
                    await asyncio.wait_for(
                        _transfer(row, source, digest, run_dir, chat_interval_s=chat_interval_s,
                                  chat_lead_s=chat_lead_s, max_s=left),
                        left + 30,
                    )
                except TimeoutError:
                    row.error = "out of time (--max-time)"
            rows.append(row)
        return FileReport(size, tcp_s, rows, chat_interval_s)


def render_file_report(report: FileReport, console: Any) -> None:
    """A rich table: MB/s and the ratio to the TCP copy; chat p50/p99 without and during."""
    from rich.table import Table

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    size_mb = report.size / MIB
    table = Table(title=f"labchat-bench --mode file ({size_mb:g} MB, random bytes, 127.0.0.1)",
                  title_justify="left")
    for col in ("path", "seconds", "MB/s", "of TCP", "upload s", "verified", "chat p50 / p99 ms without",
                "chat p50 / p99 ms during", "p99 ratio"):
        table.add_column(col, justify="left" if col == "path" else "right")
    table.add_row("plain TCP copy (reference)", f"{report.tcp_s:.2f}", f"{report.tcp_mb_s:.1f}", "1.00",
                  "", "", "", "", "")
    for r in report.rows:
        if r.error:
            table.add_row(r.label, "error", "", "", "", "", "", "", r.error[:60])
            continue
        b, d = r.chat_reference_ms, r.chat_during_ms
        ratio = (d["p99"] / b["p99"]) if d.get("p99") and b.get("p99") else None
        table.add_row(
            r.label, f"{r.total_s:.2f}", f"{r.mb_s:.1f}", f"{r.mb_s / report.tcp_mb_s:.3f}" if r.mb_s else "",
            f"{r.upload_s:.2f}", "yes" if r.verified else "NO",
            f"{ms(b.get('p50'))} / {ms(b.get('p99'))}", f"{ms(d.get('p50'))} / {ms(d.get('p99'))}",
            "n/a" if ratio is None else f"{ratio:.2f}",
        )
    console.print(table)
    for r in report.rows:
        if not r.error:
            up, down = r.chat_upload_ms, r.chat_download_ms
            console.print(f"{r.label}: chat p50 / p99 ms while the file went up {ms(up.get('p50'))} / "
                          f"{ms(up.get('p99'))} ({int(up.get('n') or 0)} lines), while it came down "
                          f"{ms(down.get('p50'))} / {ms(down.get('p99'))} ({int(down.get('n') or 0)} lines)")
    console.print(
        "seconds: from /send to the receiver's verified file; chat: a line from the receiver every "
        f"{report.chat_interval_s * 1000:g} ms, its delay to the sender, without the file (the "
        "reference: before it started and after it ended) and while it streamed (21.7: p99 at most "
        "twice the reference)"
    )
