"""Finding a server across a real network segment (docs/protocol.md 19): two network namespaces
joined by a veth pair, the server in one, `labchat --discover` in the other, the probe a real
broadcast on the segment. Then the student logs in to what was found and pins its key, as the
lab's first login does.

Needs root and iproute2 (CI runs as root); skipped with the reason otherwise. Loopback discovery is
tested in tests/client/test_discover.py wherever this cannot run.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from labchat.protocol.channel_common import fingerprint as fingerprint_of

from .procs import PYTHON, Proc, env_for, spawn

pytestmark = pytest.mark.timeout(60)

#: A private /24 for the segment; the veth ends are .1 (the server's PC) and .2 (a student's PC).
NET = "10.213.77"
PORT = 8080


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def segment() -> Iterator[tuple[str, str]]:
    """Two namespaces, `server` and `student`, on one link; removed afterwards."""
    if not sys.platform.startswith("linux"):
        pytest.skip("network namespaces are Linux's")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CI runs as root)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2's `ip` is not installed")
    tag = f"{os.getpid() % 100000}"
    server_ns, student_ns = f"lcs{tag}", f"lcc{tag}"
    veth_s, veth_c = f"vs{tag}", f"vc{tag}"
    made = _ip("netns", "add", server_ns)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {made.stderr.strip()}")
    try:
        steps = [
            ("netns", "add", student_ns),
            ("link", "add", veth_s, "type", "veth", "peer", "name", veth_c),
            ("link", "set", veth_s, "netns", server_ns),
            ("link", "set", veth_c, "netns", student_ns),
            ("-n", server_ns, "addr", "add", f"{NET}.1/24", "broadcast", f"{NET}.255", "dev", veth_s),
            ("-n", student_ns, "addr", "add", f"{NET}.2/24", "broadcast", f"{NET}.255", "dev", veth_c),
            ("-n", server_ns, "link", "set", veth_s, "up"),
            ("-n", student_ns, "link", "set", veth_c, "up"),
            ("-n", server_ns, "link", "set", "lo", "up"),
            ("-n", student_ns, "link", "set", "lo", "up"),
            # A lab PC has a default route; the limited broadcast (255.255.255.255) leaves through it.
            ("-n", student_ns, "route", "add", "default", "dev", veth_c),
        ]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                pytest.skip(f"cannot set up the veth segment ({' '.join(step)}): {done.stderr.strip()}")
        yield server_ns, student_ns
    finally:
        _ip("netns", "del", student_ns)
        _ip("netns", "del", server_ns)


async def _in(ns: str, tmp_path: Path, *args: str, password: str | None = "secret") -> Proc:
    return await spawn("ip", "netns", "exec", ns, PYTHON, *args, env=env_for(tmp_path, password))


async def test_a_student_finds_the_server_on_the_segment_and_logs_in(
    segment: tuple[str, str], tmp_path: Path
) -> None:
    server_ns, student_ns = segment
    server = await _in(server_ns, tmp_path, "-m", "labchat.server", "0.0.0.0", "-p", str(PORT),
                       "--db", str(tmp_path / "server.db"), "--name", "Lab 3", password=None)  # fmt: skip
    student: Proc | None = None
    try:
        await server.expect(r"listening on UDP", timeout=20)
        probe = await _in(student_ns, tmp_path, "-m", "labchat.client", "--discover", "--json")
        assert await probe.wait(20) == 0, await probe.stderr()
        records = [json.loads(line) for line in probe.lines]
        assert [(r["type"], r["name"], r["host"], r["port"]) for r in records] == [
            ("server", "Lab 3", f"{NET}.1", PORT)
        ]
        fingerprint = records[0]["fingerprint"]

        # The first login to what was found pins the key: the one the answer showed.
        student = await _in(student_ns, tmp_path, "-m", "labchat.client", records[0]["host"], str(PORT), "0",
                            "--plain", "--user", "budi", "--accept-new-server-key")  # fmt: skip
        await student.expect(r"\d+ online", timeout=30)
        student.send("halo dari PC 2")
        await server.expect(r"halo dari PC 2", timeout=15)
        known = next((tmp_path / "data").rglob("known_servers*")).read_text().splitlines()
        pinned = [line.split()[1] for line in known if line.startswith(f"{NET}.1:{PORT} ")]
        assert [fingerprint_of(base64.b64decode(key)) for key in pinned] == [fingerprint]
    finally:
        for p in (student, server):
            if p is not None:
                await p.kill()
