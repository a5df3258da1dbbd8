from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from labchat.compile import status as build_status
from labchat.server.transport import RelayServer

from .helpers import start_server


def pytest_report_header() -> str:
    return f"labchat build: {build_status()}"


def pytest_sessionstart(session: pytest.Session) -> None:
    # Compiled modules (make fast) older than their sources would be tested instead of the edits.
    if "STALE" in (build := build_status()):
        pytest.exit(f"labchat build: {build}", returncode=2)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RelayServer]:
    """A real relay on 127.0.0.1, ephemeral port, SQLite file in tmp_path."""
    srv = await start_server(tmp_path)
    yield srv
    await srv.stop(grace_s=0)
