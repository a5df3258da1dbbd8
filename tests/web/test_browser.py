"""`labchat-web` in a real headless Chromium: log in from a browser tab, chat with a terminal client, leave.

Everything is real: a `labchat-server` process, a `--plain` client process, `labchat-web` as a process
(which starts one app process per tab through textual-serve), and the system's Chromium driven by
Playwright. Playwright never downloads a browser here: it is pointed at /usr/bin/chromium (Debian's
`chromium` package, which `.ci/run` installs). Without that binary the test skips, and fails when CI
is set, since there it must run.

How we read what the browser shows: textual-serve's page draws the terminal with xterm.js on a
canvas, so the DOM holds no text and a screenshot would need OCR. xterm.js keeps the screen as a
buffer of cells, and `buffer.active.getLine(y).translateToString()` gives each row's text: exactly
what the canvas paints. The page keeps its `Terminal` in a closure, so an init script, run before
the page's own script, catches it when textual.js assigns `this.terminal = new Terminal(...)`, and
removes its hook straight after. Every wait is `page.wait_for_function` on that buffer (re-checked
on each animation frame, bounded by a timeout), never a sleep.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ..e2e.procs import PYTHON, Proc, env_for, spawn, start_client_proc, start_server_proc

pytestmark = pytest.mark.timeout(120)

CHROMIUM = Path("/usr/bin/chromium")
#: Flags for a quiet, sandbox-free headless run that talks to nothing but the page it is given.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Bound on each wait for the browser's screen (the first one includes starting the tab's app).
SCREEN_TIMEOUT_MS = 30_000

#: Catches textual.js's xterm.js Terminal when it is created (see the module docstring).
CATCH_TERMINAL = """
(() => {
  window.__terminals = [];
  Object.defineProperty(Object.prototype, 'terminal', {
    configurable: true,
    set(value) {
      Object.defineProperty(this, 'terminal', {value, writable: true, configurable: true, enumerable: true});
      if (value && typeof value.write === 'function' && value.buffer) {
        window.__terminals.push(value);
        delete Object.prototype.terminal;
      }
    },
  });
})();
"""
#: The terminal's visible rows as text, one line each ("" until the terminal exists).
SCREEN_TEXT = """() => {
  const term = (window.__terminals || [])[0];
  if (!term) return '';
  const buffer = term.buffer.active, rows = [];
  for (let y = 0; y < term.rows; y++) {
    const line = buffer.getLine(buffer.viewportY + y);
    rows.push(line ? line.translateToString(true) : '');
  }
  return rows.join('\\n');
}"""


def _browser_or_skip() -> Any:
    """Playwright's async API, or skip (fail under CI) with the one-line reason it cannot run."""
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found: install Debian's chromium package (apt-get install chromium)"
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        reason = reason or "playwright is not installed: pip install -e '.[test]'"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return async_playwright


class Screen:
    """The browser tab's terminal, read through xterm.js's buffer."""

    def __init__(self, page: Any) -> None:
        self.page = page

    async def text(self) -> str:
        return str(await self.page.evaluate(SCREEN_TEXT))

    async def expect(self, *needles: str, timeout_ms: int = SCREEN_TIMEOUT_MS) -> str:
        """Wait until every needle is on screen at once; the screen text on failure."""
        try:
            await self.page.wait_for_function(
                f"needles => {{ const s = ({SCREEN_TEXT})(); return needles.every(n => s.includes(n)); }}",
                arg=list(needles),
                timeout=timeout_ms,
            )
        except Exception as exc:  # Playwright's TimeoutError: say what the screen showed instead
            raise AssertionError(f"{needles} not on screen; it shows:\n{await self.text()}") from exc
        return await self.text()

    async def type(self, text: str) -> None:
        await self.page.keyboard.type(text)

    async def press(self, key: str) -> None:
        await self.page.keyboard.press(key)


@pytest.fixture
async def chromium(tmp_path: Path) -> AsyncIterator[Any]:
    """A fresh Chromium profile in tmp_path; requests anywhere but 127.0.0.1 are refused."""
    async_playwright = _browser_or_skip()
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 800},
        )
        elsewhere: list[str] = []

        async def refuse(route: Any) -> None:
            elsewhere.append(route.request.url)
            await route.abort()

        try:
            # Nothing leaves this machine in a test; and the page must need nothing from elsewhere
            # (a lab is often offline), so any such request is a failure.
            await context.route(re.compile(r"^(?!(http|ws)://127\.0\.0\.1[:/])"), refuse)
            yield context
            assert not elsewhere, f"the page asked for resources elsewhere: {elsewhere}"
        finally:
            await context.close()


async def start_web_proc(tmp_path: Path, server_port: int, *extra: str) -> tuple[Proc, str]:
    """`labchat-web 127.0.0.1 PORT --port 0 ...` as a process; returns it and the page's URL."""
    web = await spawn(
        PYTHON, "-m", "labchat.tui.web", "127.0.0.1", str(server_port), "--port", "0",
        "--known-servers", str(tmp_path / "web-known-servers"), *extra,
        env={**env_for(tmp_path, None), "LABCHAT_DOWNLOADS": str(tmp_path / "web-downloads")},
    )  # fmt: skip
    match = await web.expect(r"on (http://127\.0\.0\.1:\d+/)", timeout=20)
    return web, match.group(1)


async def sign_up(page: Any, screen: Screen, server: Proc, user: str) -> None:
    """In a tab showing the login form: a new account `user`, with the server's key trusted."""
    await page.locator(".xterm-helper-textarea").focus()
    await screen.type(user)
    await screen.press("Tab")
    await screen.type("secret")
    await screen.press("Enter")
    # First contact with this server: the tab asks to trust its key, as the terminal app does,
    # and shows the fingerprint the server printed at start.
    banner = await server.expect(r"server key fingerprint (\S+)")
    await screen.expect("Trust and log in", banner.group(1))
    await screen.press("Enter")
    await screen.expect(f"No account '{user}' here yet")
    await screen.press("Enter")  # the focused "Create account" button


async def test_browser_tab_logs_in_chats_with_a_terminal_client_and_leaves(
    tmp_path: Path, chromium: Any
) -> None:
    server, port = await start_server_proc(tmp_path)
    bob = await start_client_proc(tmp_path, port, "bob")
    await bob.expect(r"logged in as bob")
    web, url = await start_web_proc(tmp_path, port)
    figures: dict[str, float] = {}
    try:
        page = await chromium.new_page()
        await page.add_init_script(CATCH_TERMINAL)
        screen = Screen(page)
        started = time.monotonic()
        await page.goto(url, wait_until="domcontentloaded")
        await screen.expect("labchat · log in", "Password")
        figures["page to login form"] = time.monotonic() - started
        # The browser user cannot choose the UDP port: it is on the web server's machine.
        assert "Your port" not in await screen.text()
        await web.expect(r"tab opened from 127\.0\.0\.1")

        await sign_up(page, screen, server, "alice")
        await bob.expect(r"\* alice joined$", timeout=20)
        await screen.expect("Logged in as alice", "Online · 2", "(you)", "connected")
        bob.send("/who")  # the tab sits where its browser is, not on the labchat-web machine
        await bob.expect(r"alice at 127\.0\.0\.1", timeout=20)

        started = time.monotonic()
        bob.send("hello from a terminal")
        await screen.expect("bob │ hello from a terminal")
        figures["terminal -> browser"] = time.monotonic() - started

        started = time.monotonic()
        await screen.type("hi bob, from a browser")
        await screen.press("Enter")
        await bob.expect(r"<alice> hi bob, from a browser$")
        figures["browser -> terminal"] = time.monotonic() - started
        await screen.expect("alice │ hi bob, from a browser")

        await screen.press("Control+q")
        await bob.expect(r"\* alice left$")
        # The tab's app has ended: textual-serve closes the page's session.
        await page.wait_for_selector("body.-closed", state="attached", timeout=SCREEN_TIMEOUT_MS)
        await web.expect(r"tab closed from 127\.0\.0\.1")
        print("labchat-web timings (s):", {k: round(v, 2) for k, v in figures.items()})

        web.proc.terminate()
        assert await web.wait(timeout=15) == 0
        bob.send("/quit")
        assert await bob.wait() == 0
    finally:
        for proc in (web, bob, server):
            await proc.kill()


async def test_a_file_accepted_in_a_tab_is_downloaded_by_the_browser(tmp_path: Path, chromium: Any) -> None:
    """The tab saves an accepted file on the labchat-web machine, where the student cannot reach
    it; the browser is handed it as a download too (Textual's deliver_binary via textual-serve)."""
    server, port = await start_server_proc(tmp_path)
    bob = await start_client_proc(tmp_path, port, "bob")
    await bob.expect(r"logged in as bob")
    web, url = await start_web_proc(tmp_path, port)
    source = tmp_path / "lab3.py"
    source.write_text("print('hello from bob')\n" * 40)
    try:
        page = await chromium.new_page()
        await page.add_init_script(CATCH_TERMINAL)
        screen = Screen(page)
        await page.goto(url, wait_until="domcontentloaded")
        await screen.expect("labchat · log in", "Password")
        await sign_up(page, screen, server, "alice")
        await bob.expect(r"\* alice joined$", timeout=20)
        await screen.expect("Logged in as alice", "connected")
        bob.send(f"/send {source}")
        await screen.expect("bob offers lab3.py")
        async with page.expect_download(timeout=SCREEN_TIMEOUT_MS) as download_info:
            await screen.type("/accept 1")
            await screen.press("Enter")
        download = await download_info.value
        assert download.suggested_filename == "lab3.py"
        assert Path(await download.path()).read_bytes() == source.read_bytes()
        await screen.expect("lab3.py sent to your browser's downloads")
        # kill -9 of labchat-web: its tab's app goes with it (Linux), not left holding a session
        await web.kill()
        if sys.platform.startswith("linux"):
            await asyncio.wait_for(_until_no_tab_runs(tmp_path), 15)
    finally:
        for proc in (web, bob, server):
            await proc.kill()


async def _until_no_tab_runs(tmp_path: Path) -> None:
    """Until no tab process of this test (its command line names `tmp_path`) is left (Linux /proc)."""

    def running() -> bool:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                words = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue  # it ended while we looked
            if b"labchat.tui.web_tab" in words and any(str(tmp_path).encode() in w for w in words):
                return True
        return False

    while running():
        await asyncio.sleep(0.1)  # polled: a process's end sends us no event


@pytest.mark.parametrize("how", ["close the tab", "stop labchat-web"])
async def test_a_tab_that_goes_away_leaves_the_room(tmp_path: Path, chromium: Any, how: str) -> None:
    """A student who closes the tab (no Ctrl+Q), or an operator who stops labchat-web (SIGTERM): the
    tab's app says goodbye, so the room sees "carol left" at once, not after the client timeout."""
    server, port = await start_server_proc(tmp_path)
    bob = await start_client_proc(tmp_path, port, "bob")
    await bob.expect(r"logged in as bob")
    web, url = await start_web_proc(tmp_path, port)
    try:
        page = await chromium.new_page()
        await page.add_init_script(CATCH_TERMINAL)
        screen = Screen(page)
        await page.goto(url, wait_until="domcontentloaded")
        await screen.expect("Password")
        await page.locator(".xterm-helper-textarea").focus()
        await screen.type("carol")
        await screen.press("Tab")
        await screen.type("secret")
        await screen.press("Enter")
        await screen.expect("Trust and log in")
        await screen.press("Enter")
        await screen.expect("No account 'carol' here yet")
        await screen.press("Enter")
        await bob.expect(r"\* carol joined$", timeout=20)

        started = time.monotonic()
        if how == "close the tab":
            await page.close()
        else:
            web.proc.terminate()
        await bob.expect(r"\* carol left$", timeout=20)  # the server's own timeout would be 30 s
        print(f"{how} -> 'carol left' at the terminal: {time.monotonic() - started:.2f} s")
        await web.expect(r"tab closed from 127\.0\.0\.1")
        if how == "stop labchat-web":
            assert await web.wait(timeout=15) == 0
            print(f"SIGTERM -> labchat-web exited: {time.monotonic() - started:.2f} s")
            await page.wait_for_selector("body.-closed", state="attached", timeout=SCREEN_TIMEOUT_MS)
    finally:
        for proc in (web, bob, server):
            await proc.kill()


async def test_the_page_points_its_websocket_where_the_browser_is(tmp_path: Path) -> None:
    """textual-serve would write ws://0.0.0.0:PORT/ws into the page for --host 0.0.0.0; the page must
    name the address the browser used (its Host header), or --public-url behind a reverse proxy."""
    web, url = await start_web_proc(tmp_path, 8080)
    proxied, proxied_url = await start_web_proc(tmp_path, 8080, "--public-url", "https://lab.example/chat/")
    try:
        http_port = int(url.rsplit(":", 1)[1].strip("/"))
        page = await asyncio.to_thread(_get, url, {"Host": f"pc-12.lab:{http_port}"})
        assert f'data-session-websocket-url="ws://pc-12.lab:{http_port}/ws"' in page
        assert f"http://pc-12.lab:{http_port}/static/js/textual.js" in page
        assert set(_urls(page)) == {
            f"ws://pc-12.lab:{http_port}/ws",
            f"http://pc-12.lab:{http_port}/static/css/xterm.css",
            f"http://pc-12.lab:{http_port}/static/js/textual.js",
            f"http://pc-12.lab:{http_port}/static/fonts/RobotoMono-VariableFont_wght.ttf",
            f"http://pc-12.lab:{http_port}/static/images/background.png",
        }, "the page must need nothing but labchat-web (labs are often offline)"
        page = await asyncio.to_thread(_get, proxied_url, {})
        assert 'data-session-websocket-url="wss://lab.example/chat/ws"' in page
        assert "https://lab.example/chat/static/css/xterm.css" in page
        assert all(
            url.startswith(("https://lab.example/chat/", "wss://lab.example/chat/")) for url in _urls(page)
        )
    finally:
        for proc in (web, proxied):
            await proc.kill()


def _urls(page: str) -> list[str]:
    """Every absolute address the page loads (links, scripts, styles, the websocket): not xmlns names."""
    page = re.sub(r'xmlns="[^"]*"', "", page)
    return re.findall(r"(?:https?|wss?)://[^\s\"')]+", page)


def _get(url: str, headers: dict[str, str]) -> str:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode())


async def test_bad_flags_are_one_line_errors(tmp_path: Path) -> None:
    cases = [
        (["127.0.0.1", "8080", "--port", "70000"], "invalid --port 70000"),
        (["127.0.0.1", "0"], "invalid server port 0"),
        (["127.0.0.1", "8080", "--public-url", "ftp://x"], "invalid --public-url"),
        (["127.0.0.1", "eighty"], "invalid int value"),
        (["127.0.0.1", "8080", "--max-tabs", "-1"], "invalid --max-tabs -1"),
    ]

    async def run(argv: list[str]) -> tuple[int, str]:
        proc = await spawn(PYTHON, "-m", "labchat.tui.web", *argv, env=env_for(tmp_path, None))
        code = await proc.wait(timeout=30)
        return code, (await proc.stderr()).strip()

    results = await asyncio.gather(*(run(argv) for argv, _ in cases))
    for (argv, expected), (code, err) in zip(cases, results, strict=True):
        assert code == 2, (argv, err)
        assert len(err.splitlines()) == 1 and expected in err and err.startswith("labchat-web: "), err


async def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    try:
        busy = taken.sockets[0].getsockname()[1]
        proc = await spawn(
            PYTHON, "-m", "labchat.tui.web", "127.0.0.1", "8080", "--port", str(busy),
            env=env_for(tmp_path, None),
        )  # fmt: skip
        code = await proc.wait()
        err = (await proc.stderr()).strip()
        assert code == 1 and err == f"labchat-web: cannot serve on 127.0.0.1:{busy}: Address already in use"
    finally:
        taken.close()
        await taken.wait_closed()


async def test_another_sites_page_cannot_open_a_tab(tmp_path: Path) -> None:
    """Any page a student visits may open a websocket to 127.0.0.1; labchat-web refuses its Origin."""
    import aiohttp

    web, url = await start_web_proc(tmp_path, 8080)
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                connect = session.ws_connect(url + "ws", headers={"Origin": "http://evil.example"})
                await asyncio.wait_for(connect, 10)
            assert refused.value.status == 403
        await web.expect(r"refused a tab from 127\.0\.0\.1: opened by another site \(http://evil\.example\)")
        assert not any("tab opened" in line for line in web.lines)
    finally:
        await web.kill()


async def test_when_every_tab_is_taken_the_page_says_to_try_later(tmp_path: Path, chromium: Any) -> None:
    """--max-tabs bounds the processes a class (or a prank) can start; the next browser is told why."""
    import aiohttp

    web, url = await start_web_proc(tmp_path, 8080, "--max-tabs", "1")
    try:
        page = await chromium.new_page()
        await page.add_init_script(CATCH_TERMINAL)
        await page.goto(url, wait_until="domcontentloaded")
        await Screen(page).expect("Password")
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                assert response.status == 503 and response.headers["Retry-After"] == "60"
                assert "labchat is full: 1 browser tabs are open" in await response.text()
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await asyncio.wait_for(session.ws_connect(url + "ws"), 10)
            assert refused.value.status == 503
            await web.expect(r"refused a tab from 127\.0\.0\.1: 1 open, the most allowed \(--max-tabs\)")
            await page.close()
            await web.expect(r"tab closed from 127\.0\.0\.1")
            async with session.get(url) as response:
                assert response.status == 200
    finally:
        await web.kill()
