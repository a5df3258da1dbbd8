from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from labchat.server.transport import RelayServer

from .helpers import start_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RelayServer]:
    """A real relay on 127.0.0.1, ephemeral port, SQLite file in tmp_path."""
    srv = await start_server(tmp_path)
    yield srv
    await srv.stop(grace_s=0)
