"""`labchat-server ... --cluster URLS --relays N`: N relay processes of one cluster on one UDP port.

Why processes: a relay is one Python event loop, so one core; a room of thousands wants more. Why one
port: users keep typing one address. The kernel's SO_REUSEPORT lets N sockets bind the same port
and spreads the datagrams over them by a hash of the sender's address and port, so every datagram
of one client reaches the same relay, whose Noise session it belongs to. Only with --cluster: the
relays then share rooms, order and accounts through NATS; without it N processes would be N
separate servers each seeing a random part of the users.

Each child is `labchat-server` itself with the parent's flags, plus `--reuse-port`, its own local
replica database (`server.relay2.db` beside `server.db`: history, search and catch-up stay local
reads) and the one shared server key (`--key`, created by the parent before any child starts, so
all present one identity). Their log lines come out prefixed with `relay K |`.

The parent supervises: a child that dies is started again (after 1 s, doubling up to 30 s while it
keeps dying within a minute of its start); its clients' datagrams meanwhile hash to the others
(Linux moves a dead socket's share to the survivors), which do not know their sessions: the clients
log in again by ticket, which works on any relay of the cluster. Ctrl+C or SIGTERM stops every child
(SIGTERM: each tells its clients, as a single server does) and waits for them; a child that fails
during its first seconds (a bad flag, the port taken by another program) stops the whole group with
its own error line, since restarting it could not help. On Linux the children are also killed if the
parent is killed outright (PR_SET_PDEATHSIG), so no relay is left on the port unsupervised.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import signal_handlers
from ..i18n import _
from .keys import KeyFileError, load_or_create_server_key
from .store import default_db_path

#: A child that ends within this many seconds of its first start is a configuration error.
START_GRACE_S = 3.0
#: Restart back-off: the first wait, the longest, and how long a child must run to reset it.
RESTART_FIRST_S = 1.0
RESTART_MAX_S = 30.0
RESTART_RESET_S = 60.0
#: How long the children may take to stop after SIGTERM before they are killed.
STOP_TIMEOUT_S = 10.0
#: The most relays one machine is given (beyond its cores they only compete).
MAX_RELAYS = 64


def reuse_port_problem() -> str | None:
    """Why this system cannot share a UDP port between processes, or None if it can."""
    if sys.platform == "win32" or not hasattr(socket, "SO_REUSEPORT"):
        return _("this system has no SO_REUSEPORT (Linux, BSD and macOS have it)")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError as exc:
        return _("SO_REUSEPORT is refused here: {reason}").format(reason=exc.strerror or exc)
    return None


def free_shared_port(host: str) -> int:
    """A UDP port free on `host` for the relays to share (for `-p 0`): bound with SO_REUSEPORT and
    closed again just before the children bind it (a short window in which another program could
    take it; a child then fails at start and says so)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def replica_path(db_path: Path, index: int) -> Path:
    """Relay `index`'s own database beside the given one: server.db -> server.relay2.db."""
    return db_path.with_name(f"{db_path.stem}.relay{index}{db_path.suffix or '.db'}")


def child_arguments(
    argv: Sequence[str], index: int, db_path: Path, port: int, key_path: Path | None, files_dir: Path
) -> list[str]:
    """The parent's own arguments with --relays taken out and this child's replica database and
    files directory, the shared port and key added (argparse keeps the last value of a repeated
    flag). Offered files stay with the relay that took them: each numbers its own."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--relays":
            skip = True
            continue
        if arg.startswith("--relays="):
            continue
        out.append(arg)
    out += ["--reuse-port", "--db", str(replica_path(db_path, index)), "-p", str(port),
            "--files-dir", str(files_dir / f"relay{index}")]
    if key_path is not None:
        out += ["--key", str(key_path)]
    return out


@dataclass
class _Child:
    index: int
    args: list[str]
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    starts: int = 0
    backoff_s: float = RESTART_FIRST_S
    last_lines: list[str] = field(default_factory=list)


class Supervisor:
    """Starts, restarts and stops the relay processes; `await run()` returns the exit status."""

    def __init__(self, children: list[list[str]]) -> None:
        self.children = [_Child(i + 1, args) for i, args in enumerate(children)]
        self.stopping = asyncio.Event()
        self.failure: str | None = None
        self.status = 0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        signals = signal_handlers.signals_named("SIGINT", "SIGTERM", "SIGBREAK")
        restore = signal_handlers.install(loop, signals, lambda _sig: self.stopping.set())
        try:
            tasks = [asyncio.create_task(self._keep(child)) for child in self.children]
            await self.stopping.wait()
            await self._stop_all()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            restore()
        if self.failure is not None:
            print(f"labchat-server: {self.failure}", file=sys.stderr, flush=True)
        return self.status

    async def _start(self, child: _Child) -> None:
        env = {**os.environ, "COLUMNS": os.environ.get("COLUMNS", "160"), "PYTHONUNBUFFERED": "1"}
        child.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "labchat.server", *child.args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env, limit=1 << 20,
            preexec_fn=signal_handlers.die_with_parent,
        )  # fmt: skip
        child.started = time.monotonic()
        child.starts += 1

    async def _keep(self, child: _Child) -> None:
        """Run one child for ever: start it, echo its lines, start it again when it dies."""
        while not self.stopping.is_set():
            try:
                await self._start(child)
            except OSError as exc:
                self.failure = _("cannot start relay {index}: {reason}").format(
                    index=child.index, reason=exc.strerror or exc)
                self.status = 1
                self.stopping.set()
                return
            assert child.proc is not None and child.proc.stdout is not None
            child.last_lines.clear()
            async for raw in child.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                child.last_lines = [*child.last_lines[-4:], line]
                print(f"relay {child.index} | {line}", flush=True)
            code = await child.proc.wait()
            # Ctrl+C reaches the whole process group: the child may end before our own handler has
            # run. Give the signal a moment to arrive before calling this a death.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 0.5)
            if self.stopping.is_set():
                return
            ran = time.monotonic() - child.started
            # Only an exit with an error status is a configuration error (one line, 1 or 2); a
            # death by a signal (kill -9, a crash) is restarted however early it comes.
            if child.starts == 1 and ran < START_GRACE_S and code > 0:
                why = next((ln for ln in reversed(child.last_lines) if ln.strip()), "")
                self.failure = _("relay {index} could not start (exit {code}): {why}").format(
                    index=child.index, code=code, why=why.removeprefix("labchat-server: "))
                self.status = code or 1
                self.stopping.set()
                return
            if ran >= RESTART_RESET_S:
                child.backoff_s = RESTART_FIRST_S
            again = _("relay {index} | ended (exit {code}) after {seconds:.0f} s: restarting in {wait:g} s")
            print(again.format(index=child.index, code=code, seconds=ran, wait=child.backoff_s), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), child.backoff_s)
            child.backoff_s = min(RESTART_MAX_S, child.backoff_s * 2)

    async def _stop_all(self) -> None:
        running = [c.proc for c in self.children if c.proc is not None and c.proc.returncode is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)), STOP_TIMEOUT_S)
        except TimeoutError:
            for proc in running:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*(p.wait() for p in running))

    @property
    def pids(self) -> list[int]:
        return [c.proc.pid for c in self.children if c.proc is not None]


def run_relays(argv: Sequence[str], relays: int, host: str, port: int, db: Path | None,
               key: Path | None, has_key_flag: bool, files_dir: Path | None = None) -> int:
    """`--relays N`: prepare the shared key and port, start the children, supervise until stopped.

    `has_key_flag`: the server takes `--key` (cluster mode); the key is then made once, here, and
    handed to every child, so that all present one identity.
    """
    db_path = db or default_db_path()
    key_path = None
    if has_key_flag:
        key_path = key or db_path.with_name(db_path.stem + ".key")
        try:
            load_or_create_server_key(key_path)
        except KeyFileError as exc:
            print(f"labchat-server: {exc}", file=sys.stderr)
            return 1
    try:
        shared = port or free_shared_port(host)
    except OSError as exc:
        text = _("cannot listen on {address}: {reason}").format(address=f"{host}:{port}",
                                                                reason=exc.strerror or exc)
        print(f"labchat-server: {text}", file=sys.stderr)
        return 1
    print(_("labchat server: {count} relays sharing UDP {address} (one replica database each: {example})")
          .format(count=relays, address=f"{host}:{shared}", example=replica_path(db_path, 1)), flush=True)
    files = files_dir or db_path.parent / "files"
    children = [child_arguments(argv, i + 1, db_path, shared, key_path, files) for i in range(relays)]
    try:
        return asyncio.run(Supervisor(children).run())
    except KeyboardInterrupt:
        return 0
