from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from labchat.compile import status as build_status
from labchat.server.transport import RelayServer

from .helpers import start_server

# Property tests judge what a parser does with an input, not how fast one example runs: on a loaded
# CI machine a garbage collection can make one example take over Hypothesis's default 200 ms and fail
# it as "DeadlineExceeded" (Hypothesis lifts the deadline only where a CI variable is set).
settings.register_profile("labchat", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("labchat")


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


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """A test that runs a command's main() in this process (labchat-server --cluster refusing to
    start, say) configures the root logger with a handler on that test's stdout; restore the root
    logger after every test, so the next one's output (a bench's --json) is its own."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
