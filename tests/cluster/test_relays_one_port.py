"""`labchat-server ... --cluster URLS --relays N`: N relay processes answering on one UDP port, a dead
one started again, all stopped by SIGTERM; and the one-line refusals."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from labchat.client.core import ChatClient
from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from labchat.server.cli import build_parser
from labchat.server.supervisor import child_arguments, replica_path, reuse_port_problem
from tests.e2e.procs import Proc, spawn_server
from tests.helpers import ClientUnderTest
from tests.nats_cluster import NatsCluster

needs_reuse_port = pytest.mark.skipif(
    reuse_port_problem() is not None or sys.platform != "linux",
    reason=f"needs Linux (its /proc shows the relay processes) and SO_REUSEPORT ({reuse_port_problem()})",
)


def cluster_flags_known() -> bool:
    return "cluster" in vars(build_parser().parse_args(["127.0.0.1"]))


def test_child_arguments_take_relays_out_and_give_each_its_replica(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    args = child_arguments(["0.0.0.0", "--relays", "3", "--cluster", "nats://a:1", "--relays=3"], 2, db, 9000,
                           tmp_path / "k", tmp_path / "files")  # fmt: skip
    replica, files = str(tmp_path / "server.relay2.db"), str(tmp_path / "files" / "relay2")
    assert args == ["0.0.0.0", "--cluster", "nats://a:1", "--reuse-port", "--db", replica, "-p", "9000",
                    "--files-dir", files, "--key", str(tmp_path / "k")]  # fmt: skip
    assert replica_path(tmp_path / "x", 1) == tmp_path / "x.relay1.db"


async def test_relays_and_reuse_port_refuse_to_run_without_a_cluster(tmp_path: Path) -> None:
    for flags in (("--relays", "2"), ("--reuse-port",)):
        server = await spawn_server(tmp_path, tmp_path / "server.db", *flags)
        assert await server.wait(20) == 2
        err = await server.stderr()
        assert "needs --cluster" in err and err.count("\n") == 1


@needs_reuse_port
async def test_n_relays_answer_on_one_port_and_a_dead_one_comes_back(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    if not cluster_flags_known():
        pytest.skip("this labchat-server has no --cluster yet")
    server = await spawn_server(tmp_path, tmp_path / "server.db", "--cluster", nats_cluster.url_list,
                                "--relays", "2")  # fmt: skip
    clients: list[ClientUnderTest] = []
    try:
        port = int((await server.expect(r"2 relays sharing UDP 127\.0\.0\.1:(\d+)", 20)).group(1))
        for index in (1, 2):
            await server.expect(rf"relay {index} \| .*listening on UDP 127\.0\.0\.1:{port}", 30)
        # The kernel spreads clients by a hash of their address: log in until each relay has had one
        # (40 clients all on one of two relays: a chance of 2 in 2^40).
        landed: set[str] = set()
        for i in range(40):
            user = f"user{i}"
            known = KnownServers(tmp_path / f"known-{user}")
            client = ChatClient("127.0.0.1", port, user, "secret-pw", known_servers=known)
            cut = await ClientUnderTest(client).start()
            clients.append(cut)
            await cut.wait_for(ev.LoggedIn, timeout=15)
            match = await server.expect(rf"relay (\d) \| .*{user} joined", 10)
            landed.add(match.group(1))
            if landed == {"1", "2"}:
                break
        assert landed == {"1", "2"}
        child_pids = children_of(server.proc.pid)
        assert len(child_pids) == 2
        os.kill(child_pids[0], signal.SIGKILL)
        killed = (await server.expect(r"relay (\d) \| ended \(exit -9\).*restarting in 1 s", 10)).group(1)
        await expect_lines(server, rf"relay {killed} \| .*listening on UDP 127\.0\.0\.1:{port}", 2)
        now = children_of(server.proc.pid)
        assert len(now) == 2 and child_pids[0] not in now and child_pids[1] in now
    finally:
        for cut in clients:
            await cut.close()
        if server.proc.returncode is None:
            server.proc.send_signal(signal.SIGTERM)
    assert await server.wait(20) == 0
    assert children_of(server.proc.pid) == []


def children_of(pid: int) -> list[int]:
    """The child processes of `pid` (Linux /proc; elsewhere the test is skipped)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(x) for x in path.read_text().split()]
    except OSError:
        return []


async def expect_lines(server: Proc, pattern: str, count: int, timeout: float = 20.0) -> list[re.Match[str]]:
    """Wait until `count` stdout lines match `pattern`."""
    regex = re.compile(pattern)

    async def scan() -> list[re.Match[str]]:
        while True:
            found = [m for line in server.lines if (m := regex.search(line))]
            if len(found) >= count:
                return found
            if server._reader.done():
                raise AssertionError(f"process ended before {count} lines of {pattern!r}: {server.lines}")
            server._new.clear()  # no await since the lines were counted: nothing is missed
            await server._new.wait()

    return await asyncio.wait_for(scan(), timeout)


@needs_reuse_port
async def test_the_relays_end_when_their_parent_is_killed(nats_cluster: NatsCluster, tmp_path: Path) -> None:
    """No relay is left on the port unsupervised: the kernel ends the children (PR_SET_PDEATHSIG)."""
    if not cluster_flags_known():
        pytest.skip("this labchat-server has no --cluster yet")
    server = await spawn_server(tmp_path, tmp_path / "server.db", "--cluster", nats_cluster.url_list,
                                "--relays", "2")  # fmt: skip
    try:
        await expect_lines(server, r"relay \d \| .*listening on UDP", 2, 30)
        children = children_of(server.proc.pid)
        assert len(children) == 2
    finally:
        await server.kill()

    async def gone() -> None:
        while any(Path(f"/proc/{pid}").exists() and not zombie(pid) for pid in children):
            await asyncio.sleep(0.05)  # polling /proc: there is no event for another process's end

    await asyncio.wait_for(gone(), 15)


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
