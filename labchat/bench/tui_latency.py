"""`--mode tui`: the Textual app, headless, under a stream of room messages.

A sender client streams messages into the room at --rate while the app (logged in as another user)
runs under `App.run_test()`. We measure:

- login screen: time from `run_test()` entering to the first screen being mounted;
- key to screen: for each key pressed with the pilot, the time until the focused Input's value shows
  it (p50/p95/p99/max), while the stream runs.

The app comes from `labchat.tui.app.make_app(host, port, client_port, user=..., known_servers=...)`:
the bench types the password on its login screen, trusts the bench server's key if asked, and waits
for the room's input. If the module is missing or the app breaks, this mode fails with one line.
"""

from __future__ import annotations

import asyncio
import string
import tempfile
import time
from pathlib import Path
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


def _build_app(make_app: Any, host: str, port: int, user: str, known_path: str) -> Any:
    from ..client.known_servers import KnownServers

    return make_app(host, port, 0, user=user, known_servers=KnownServers(known_path))


def run_tui_mode(bench: Bench) -> None:
    make_app = _factory()
    s = bench.s
    server, pool, info = bench.session(max(1, s.clients), s.rate)  # the senders
    try:
        tui_user_index = 99_999
        with tempfile.TemporaryDirectory(prefix="labchat-bench-tui-") as tmp:
            try:
                row = asyncio.run(_drive(make_app, server.host, server.port,
                                         user_name(tui_user_index), pool, s.rate, s.duration,
                                         str(Path(tmp) / "known_servers")))
            except (TuiUnavailable, TimeoutError, RuntimeError):
                raise
            except Exception as exc:  # the app is another team's: report, in one line, what broke
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise TuiUnavailable(
                    f"the TUI failed under the bench: {type(exc).__name__}: {first}") from None
        row.update(info, label="tui", clients=s.clients, rate=s.rate)
        bench.report.rows.append(row)
    finally:
        pool.stop()
        bench.stop_server(server)


async def _wait_focus(app: Any, pilot: Any, widget_id: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        focused = _focused_input(app)
        if focused is not None and focused.id == widget_id:
            return focused
        trust = _trust_button(app)
        if trust is not None:
            await pilot.press("enter")  # first contact with the bench server: trust its key
        elif _create_offered(app):
            await pilot.press("enter")  # a new name: yes, create the bench's account
        await pilot.pause(0.02)
    return None


def _trust_button(app: Any) -> Any:
    try:
        return app.screen.query_one("#trust")
    except Exception:
        return None


async def _drive(make_app: Any, host: str, port: int, user: str, pool: WorkerPool,
                 rate: float, duration: float, known_path: str) -> dict[str, Any]:
    from textual import events  # here, not at the top: the other modes must not need Textual

    app = _build_app(make_app, host, port, user, known_path)
    hist = Histogram()
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    async with app.run_test(headless=True, size=(120, 40)) as pilot:
        # The login screen: its password field focused (the name came with user=).
        password = await _wait_focus(app, pilot, "password", 5.0)
        login_screen_s = time.monotonic() - t0
        if password is None:
            raise RuntimeError("the TUI login screen never focused its password field within 5 s")
        password.value = PASSWORD
        await pilot.press("enter")
        t1 = time.monotonic()
        target = await _wait_focus(app, pilot, "composer-input", 15.0)
        if target is None:
            raise RuntimeError("the TUI never reached the room's input within 15 s of logging in")
        logged_in_s = time.monotonic() - t1
        # The stream runs in the worker processes; the pool call blocks, so run it in a thread.
        stream = loop.run_in_executor(None, pool.run, 1, rate, duration, 10.0)
        keys = string.ascii_lowercase
        end = time.monotonic() + duration
        pressed = 0
        while time.monotonic() < end and pressed < KEYS:
            key = keys[pressed % len(keys)]
            before = target.value
            start = time.monotonic()
            # Post the key as the terminal driver does; `pilot.press` would also wait for the whole
            # app to go idle, which never happens while a stream is arriving, and time that instead.
            app.post_message(events.Key(key, key))
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
        "tui": {"login_screen_s": round(login_screen_s, 3), "login_target_s": LOGIN_TARGET_S,
                "login_to_room_s": round(logged_in_s, 3),
                "keys": hist.n, "key_to_screen_ms": hist.summary_ms(),
                "stream_offered_msg_s": round(merged["offered_msg_s"], 1)},
        "latency_ms": hist.summary_ms(), "offered_msg_s": merged["offered_msg_s"],
        "lost": 0, "duplicated": 0,
    }


def _focused_input(app: Any) -> Any:
    """The focused text field: a login form `Input` or the room's composer."""
    from textual.widgets import Input

    from ..tui.widgets.composer import ComposerArea

    focused = app.focused
    return focused if isinstance(focused, (Input, ComposerArea)) else None


def _create_offered(app: Any) -> bool:
    try:
        return bool(app.screen.query_one("#create").display)
    except Exception:
        return False
