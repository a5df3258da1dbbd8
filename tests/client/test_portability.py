"""Windows and macOS: the client and server on an event loop without `add_reader` or
`add_signal_handler` (as Windows' proactor loop), and on a platform without SIGHUP.

The loop below is asyncio's selector loop with those two POSIX-only methods refusing, exactly as the
proactor loop refuses them; everything else (sockets, datagram transports, timers) is the real thing.
"""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from rich.console import Console

from labchat import signal_handlers
from labchat.client import cli as client_cli
from labchat.protocol import events as ev
from labchat.protocol.channel import ServerChannel
from labchat.server import cli as server_cli
from labchat.server.keys import load_or_create_server_key
from labchat.server.relay import Relay, RelayConfig
from labchat.server.store import Store

from ..e2e.procs import env_for
from ..helpers import TEST_SCRYPT_N, connect, start_server

pytestmark = pytest.mark.timeout(60)
T = TypeVar("T")


class WindowsLikeLoop(asyncio.SelectorEventLoop):
    """Refuses what Windows' ProactorEventLoop refuses."""

    def add_reader(self, *args: Any) -> None:
        raise NotImplementedError

    def remove_reader(self, *args: Any) -> bool:
        raise NotImplementedError

    def add_signal_handler(self, *args: Any) -> None:
        raise NotImplementedError

    def remove_signal_handler(self, *args: Any) -> bool:
        raise NotImplementedError


class WindowsLikePolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return WindowsLikeLoop()


def run_on_windows_like_loop(make: Callable[[], Coroutine[Any, Any, T]], timeout: float = 40) -> T:
    loop = WindowsLikeLoop()
    errors: list[str] = []  # an exception in a callback is only logged by the loop: catch it here
    loop.set_exception_handler(lambda _loop, context: errors.append(str(context)))
    try:
        result = loop.run_until_complete(asyncio.wait_for(make(), timeout))
    finally:
        loop.close()
    assert errors == []
    return result


def test_chat_on_a_loop_without_add_reader(tmp_path: Path) -> None:
    async def conversation() -> None:
        server = await start_server(tmp_path)
        assert server.protocol._transport is not None  # the fallback is what runs here
        alice = await connect(server, "alice", tmp_path=tmp_path)
        bob = await connect(server, "bob", tmp_path=tmp_path)
        assert alice.client._transport is not None
        for i in range(30):
            alice.client.submit(f"line {i}")
        await bob.wait_for(ev.MessageReceived, lambda e: e.text == "line 29")
        assert [e.text for e in bob.of(ev.MessageReceived)] == [f"line {i}" for i in range(30)]
        await alice.wait_for(ev.MessageDelivered, lambda e: e.text == "line 29")
        bob.client.submit("/msg alice just you")
        assert (await alice.wait_for(ev.PrivateReceived)).text == "just you"
        bob.client.submit("QUIT")
        await bob.client.closed.wait()
        assert (await alice.wait_for(ev.UserLeft)).user == "bob"
        await alice.close()
        await bob.close()
        await server.stop(grace_s=0.0)

    run_on_windows_like_loop(conversation)


def test_signal_handlers_fall_back_to_signal_module() -> None:
    """Where the loop cannot take a signal handler, the signal still reaches the loop's thread."""

    async def main() -> list[int]:
        got: list[int] = []
        arrived = asyncio.Event()

        def on_signal(signum: int) -> None:
            got.append(signum)
            arrived.set()

        loop = asyncio.get_running_loop()
        restore = signal_handlers.install(loop, [signal.SIGUSR1], on_signal)
        try:
            signal.raise_signal(signal.SIGUSR1)
            await asyncio.wait_for(arrived.wait(), 5)
        finally:
            restore()
        return got

    before = signal.getsignal(signal.SIGUSR1)
    assert run_on_windows_like_loop(main) == [signal.SIGUSR1]
    assert signal.getsignal(signal.SIGUSR1) == before  # put back as it was


class _Watched(io.StringIO):
    """The server's console output, with an event set on every write (so a test awaits the banner)."""

    seen: asyncio.Event | None = None

    def write(self, text: str) -> int:
        if self.seen is not None:
            self.seen.set()
        return super().write(text)


def test_server_stops_politely_on_a_loop_without_signal_handlers(tmp_path: Path) -> None:
    """labchat-server's own run: SIGTERM still tells the clients and ends with status 0."""
    store = Store(tmp_path / "server.db", scrypt_n=TEST_SCRYPT_N)
    relay = Relay(store, ServerChannel(load_or_create_server_key(tmp_path / "server.key")), RelayConfig())
    out = _Watched()
    console = Console(file=out, width=200)

    async def run() -> int:
        out.seen = asyncio.Event()
        serving = asyncio.ensure_future(server_cli._run("127.0.0.1", 0, relay, tmp_path / "server.db",
                                                        "SHA256:test", console))  # fmt: skip
        while "clients connect with" not in out.getvalue():
            out.seen.clear()
            await out.seen.wait()
        # _run installs its handlers right after the banner's last line, before it next waits.
        signal.raise_signal(signal.SIGTERM)
        return await serving

    assert run_on_windows_like_loop(run) == 0
    assert "shutting down: telling 0 clients" in out.getvalue()


def test_line_mode_without_sighup_on_a_windows_like_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`labchat ... --plain` itself (argument parsing, signals, line mode) where SIGHUP does not exist
    and the loop has neither add_reader nor add_signal_handler."""
    server = subprocess.Popen(
        [sys.executable, "-m", "labchat.server", "127.0.0.1", "-p", "0", "--db", str(tmp_path / "s.db"),
         "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(tmp_path, None), text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = 0
        for line in server.stdout:  # the banner comes first; the process is killed below in any case
            if "listening on UDP" in line:
                port = int(line.rsplit(":", 1)[1])
                break
        assert port
        monkeypatch.delattr(signal, "SIGHUP")
        monkeypatch.setenv("LABCHAT_PASSWORD", "secret")
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
        monkeypatch.setattr(sys, "stdin", io.StringIO("hello from a lab PC\n"))
        asyncio.set_event_loop_policy(WindowsLikePolicy())
        try:
            code = client_cli.main(["127.0.0.1", str(port), "0", "--plain", "--user", "alice"])
        finally:
            asyncio.set_event_loop_policy(None)
        out = capsys.readouterr().out
        assert code == 0, out
        assert "logged in as alice" in out and "<alice> hello from a lab PC" in out
    finally:
        server.kill()
        server.wait(10)
