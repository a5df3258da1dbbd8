"""`--mode tui`: the Textual app, headless, under a stream of room messages.

A sender client streams messages into the room at --rate while the app (logged in as another user)
runs under `App.run_test()`. We measure:

- login screen: time from `run_test()` entering to the first screen being mounted;
- key to screen: for each key pressed with the pilot, the time until the focused Input's value shows
  it (p50/p95/p99/max), while the stream runs.

The app comes from `labchat.tui.app.make_app(host, port, user, password)`; until that module exists
this mode fails with one line saying so.
"""

from __future__ import annotations

import asyncio
import inspect
import string
import time
from typing import TYPE_CHECKING, Any

from .load import PASSWORD, WorkerPool, user_name
from .stats import Histogram

if TYPE_CHECKING:
    from .runner import Bench

KEYS = 200
LOGIN_TARGET_S = 0.5


class TuiUnavailable(RuntimeError):
    pass


def _factory() -> Any:
    try:
        from ..tui import app as tui_app
    except ImportError as exc:
        raise TuiUnavailable(
            "--mode tui needs labchat/tui/app.py with make_app(...), which does not exist yet "
            f"({exc})") from None
    make_app = getattr(tui_app, "make_app", None)
    if make_app is None:
        raise TuiUnavailable("--mode tui needs make_app(...) in labchat/tui/app.py; it is not there")
    return make_app


def _build_app(make_app: Any, host: str, port: int, user: str) -> Any:
    """Call make_app with whatever of (host, port, user, password, ...) it names."""
    params = inspect.signature(make_app).parameters
    values = {"host": host, "server_host": host, "server": host, "port": port, "server_port": port,
              "user": user, "name": user, "username": user, "password": PASSWORD}
    kwargs = {k: v for k, v in values.items() if k in params}
    return make_app(**kwargs)


def run_tui_mode(bench: Bench) -> None:
    make_app = _factory()
    s = bench.s
    server, pool, info = bench.session(max(1, s.clients))  # the senders
    try:
        tui_user_index = 99_999
        row = asyncio.run(_drive(make_app, server.host, server.port, user_name(tui_user_index),
                                 pool, s.rate, s.duration))
        row.update(info, label="tui", clients=s.clients, rate=s.rate)
        bench.report.rows.append(row)
    finally:
        pool.stop()
        bench.stop_server(server)


async def _drive(make_app: Any, host: str, port: int, user: str, pool: WorkerPool,
                 rate: float, duration: float) -> dict[str, Any]:
    app = _build_app(make_app, host, port, user)
    t0 = time.monotonic()
    hist = Histogram()
    loop = asyncio.get_running_loop()
    async with app.run_test(headless=True, size=(120, 40)) as pilot:
        login_s = time.monotonic() - t0
        # Wait (bounded) for the app to log in and focus its input.
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and _focused_input(app) is None:
            await pilot.pause(0.05)
        target = _focused_input(app)
        if target is None:
            raise RuntimeError("the TUI never focused an Input within 10 s: cannot measure key-to-screen")
        # The stream runs in the worker processes; the pool call blocks, so run it in a thread.
        stream = loop.run_in_executor(None, pool.run, 1, rate, duration, 5.0)
        keys = string.ascii_lowercase
        end = time.monotonic() + duration
        pressed = 0
        while time.monotonic() < end and pressed < KEYS:
            key = keys[pressed % len(keys)]
            before = target.value
            start = time.monotonic()
            await pilot.press(key)
            while target.value == before and time.monotonic() - start < 2.0:
                await asyncio.sleep(0)
            hist.add(time.monotonic() - start)
            pressed += 1
            if len(target.value) > 60:
                target.value = ""
            await asyncio.sleep(max(0.0, duration / KEYS - (time.monotonic() - start)))
        results = await stream
    from .load import merge_step

    merged = merge_step(results, 0)
    return {
        "tui": {"login_screen_s": round(login_s, 3), "login_target_s": LOGIN_TARGET_S,
                "keys": hist.n, "key_to_screen_ms": hist.summary_ms(),
                "stream_offered_msg_s": round(merged["offered_msg_s"], 1)},
        "latency_ms": hist.summary_ms(), "offered_msg_s": merged["offered_msg_s"],
        "lost": 0, "duplicated": 0,
    }


def _focused_input(app: Any) -> Any:
    from textual.widgets import Input

    focused = app.focused
    return focused if isinstance(focused, Input) else None
