"""Issue 'a hostile student cannot lock a user out', with real processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from .procs import start_client_proc, start_server_proc

pytestmark = pytest.mark.timeout(90)

_DATA, _RESET = 4, 5


class OnPathAttacker:
    """A forwarder between one client and the server that can also inject datagrams towards the
    client as if from the server: what anyone who can spoof the server's address on the LAN can do.
    It learns the client's current session id from the clear DATA header (bytes 4-12)."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.client_addr: tuple[str, int] | None = None
        self.session_id: bytes | None = None
        self.listen: asyncio.DatagramTransport | None = None
        self.upstream: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self) -> OnPathAttacker:
        loop = asyncio.get_running_loop()
        attacker = self

        class Down(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                attacker.client_addr = addr
                if len(data) >= 12 and data[:2] == b"LC" and data[3] == _DATA:
                    attacker.session_id = data[4:12]
                assert attacker.upstream is not None
                attacker.upstream.sendto(data)

        class Up(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if attacker.listen is not None and attacker.client_addr is not None:
                    attacker.listen.sendto(data, attacker.client_addr)

        self.upstream, _ = await loop.create_datagram_endpoint(
            Up, remote_addr=("127.0.0.1", self.server_port)
        )
        self.listen, _ = await loop.create_datagram_endpoint(Down, local_addr=("127.0.0.1", 0))
        self.port = self.listen.get_extra_info("sockname")[1]
        return self

    def forge_reset(self) -> bool:
        if self.listen is None or self.client_addr is None or self.session_id is None:
            return False
        self.listen.sendto(b"LC\x01" + bytes((_RESET,)) + self.session_id, self.client_addr)
        return True

    def close(self) -> None:
        for t in (self.listen, self.upstream):
            if t is not None:
                t.close()


async def test_an_online_user_stays_online_through_guessing_and_forged_resets(tmp_path: Path) -> None:
    """Ten wrong logins at once as ana (from ana's own address: the address budget is spent too)
    and forged RESETs that make ana's client re-connect: each re-connect logs in with the ticket,
    the room never sees ana leave, and ana keeps chatting."""
    server, port = await start_server_proc(tmp_path)
    attacker = await OnPathAttacker(port).start()
    procs = []
    try:
        ana = await start_client_proc(tmp_path, attacker.port, "ana", password="ana's password")
        procs.append(ana)
        await ana.expect("logged in")
        budi = await start_client_proc(tmp_path, port, "budi")
        procs.append(budi)
        await budi.expect("logged in")
        wrong = await asyncio.gather(
            *(start_client_proc(tmp_path, port, "ana", password=f"guess {i}") for i in range(10))
        )
        procs += wrong
        seen: list[str] = []
        for round_ in range(4):
            assert attacker.forge_reset()
            await ana.expect("reconnected", timeout=15)
            seen += ana.lines
            ana.lines.clear()
            ana.send(f"still here {round_}")
            await budi.expect(f"<ana> still here {round_}", timeout=15)
        codes = await asyncio.gather(*(p.wait(timeout=30) for p in wrong))
        assert all(code != 0 for code in codes)  # every guess was refused
        await server.expect(r"login as ana from .* refused", timeout=10)
        assert not any("ana left" in line for line in budi.lines)
        seen += ana.lines
        assert sum("reconnected" in line for line in seen) == 4
        assert not any("disconnected" in line or "error" in line for line in seen)
        assert not any("refused for now" in line for line in seen)  # the ticket: never throttled
        assert ana.proc.returncode is None
        for p in (ana, budi):
            p.send("QUIT")
            assert await p.wait() == 0
    finally:
        attacker.close()
        for p in procs:
            if p.proc.returncode is None:
                p.proc.kill()
        await server.kill()


async def test_kill_9_and_restart_resumes_with_the_ticket(tmp_path: Path) -> None:
    """The ticket key is kept beside server.key (0600): after kill -9 and a restart the client is
    back in with its ticket, without a password check."""
    db = tmp_path / "server.db"
    server, port = await start_server_proc(tmp_path, db=db)
    ana = await start_client_proc(tmp_path, port, "ana")
    try:
        await ana.expect("logged in")
        await server.expect(r"ana joined.* \(1 online\)")
        assert (tmp_path / "server.ticket-key").stat().st_mode & 0o077 == 0
        server.proc.send_signal(signal.SIGKILL)
        await server.wait()
        await ana.expect("reconnecting", timeout=15)
        server, _ = await start_server_proc(tmp_path, db=db, port=port)
        await ana.expect("reconnected", timeout=30)
        await server.expect(r"ana joined.* with a resumption ticket", timeout=15)
        ana.send("QUIT")
        assert await ana.wait(15) == 0
    finally:
        await ana.kill()
        await server.kill()
