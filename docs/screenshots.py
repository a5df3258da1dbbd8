"""Regenerate the screenshots of docs/user-guide.md: the app drives itself against a real local server.

    .venv/bin/python docs/screenshots.py            # writes docs/images/*.svg
    .venv/bin/python docs/screenshots.py classroom  # only the pictures of "Running a class"

A relay runs on 127.0.0.1 (a free port, a throwaway database and key), a few line-mode clients play
the other people in the room, and the Textual app is driven headless with Textual's Pilot; each
picture is the app's own `save_screenshot`. Times are shown in UTC so the pictures look the same
wherever they are made (the clock on them is the real one, so they change a little each run).
"""

from __future__ import annotations

import asyncio
import html
import re
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

from rich.cells import cell_len
from textual.pilot import Pilot
from textual.widgets import Input

from labchat.client.core import ChatClient
from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from labchat.protocol.channel import ServerChannel
from labchat.protocol.client import ClientConfig
from labchat.server.keys import load_or_create_server_key
from labchat.server.relay import Relay, RelayConfig
from labchat.server.store import Store
from labchat.server.transport import RelayServer, serve
from labchat.tui.app import LabchatApp, make_app
from labchat.tui.screens.servers import ServersScreen
from labchat.tui.screens.trust import TrustScreen

IMAGES = Path(__file__).resolve().parent / "images"
SIZE = (90, 28)
#: The classroom's pictures have the help queue or a card beside the log: a little more room.
CLASS_SIZE = (100, 30)
#: The teacher's screen: the help queue panel takes a column of its own beside the log.
TEACHER_SIZE = (120, 30)
#: Every wait is bounded by this (seconds).
WAIT_S = 10.0
stopped = False


async def until(pilot: Pilot[object], predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not predicate():
            await pilot.pause(0.02)

    await asyncio.wait_for(poll(), WAIT_S)


async def settle(pilot: Pilot[object]) -> None:
    """Let batched log writes and repaints finish before a picture is taken."""
    app = pilot.app
    assert isinstance(app, LabchatApp)
    await pilot.pause(0.1)
    await until(pilot, lambda: not app.room.log_view._unrendered)
    await pilot.pause(0.05)


async def person(
    server: RelayServer, name: str, work: Path, *, rooms: tuple[str, ...] = (), seat: str = ""
) -> ChatClient:
    """Another person in the room, on a line-mode client (in `rooms`, sitting at `seat`; "": no seat,
    so the pictures never show the host name of the machine that made them)."""
    host, port = server.address
    client = ChatClient(
        host, port, name, f"{name}-pw", known_servers=KnownServers(work / name), rooms=rooms, seat=seat
    )
    await client.start()
    while not isinstance(await asyncio.wait_for(client.next_event(), WAIT_S), ev.LoggedIn):
        pass
    await asyncio.wait_for(client.ready.wait(), WAIT_S)
    return client


async def heard(client: ChatClient, predicate: Callable[[ev.Event], bool]) -> ev.Event:
    """Read a line-mode person's events until one matches (the ones before it are passed over)."""

    async def read() -> ev.Event:
        while not predicate(event := await client.next_event()):
            pass
        return event

    return await asyncio.wait_for(read(), WAIT_S)


def shot(app: LabchatApp, name: str) -> None:
    path = Path(app.save_screenshot(f"{name}.svg", str(IMAGES)))
    path.write_text(tidy_svg(path.read_text(encoding="utf-8")), encoding="utf-8")
    print("wrote", path.relative_to(IMAGES.parent.parent), file=sys.__stderr__)


_TEXT_RE = re.compile(
    r'(<text [^>]*?x=")([0-9.]+)("[^>]*?textLength=")([0-9.]+)("[^>]*>)((?:&#160;)+)([^<]+)</text>'
)


def tidy_svg(svg: str) -> str:
    """Move each text run's leading spaces into its x position.

    Textual writes a run that starts with spaces as `&#160;&#160;text` at the run's first cell. Some
    SVG renderers (librsvg, and so ImageMagick and many previewers) drop leading no-break spaces and
    draw the text a cell or two early: "alice wrote" looked like "alicewrote". Starting the run where
    its first visible character is draws the same picture in every renderer.
    """

    def move(match: re.Match[str]) -> str:
        head, x, mid, length, tail, spaces, text = match.groups()
        cells = cell_len(html.unescape(spaces + text))
        if cells == 0:
            return match.group(0)
        width = float(length) / cells
        shift = width * spaces.count("&#160;")
        return f"{head}{float(x) + shift:.1f}{mid}{float(length) - shift:.1f}{tail}{text}</text>"

    return _TEXT_RE.sub(move, svg)


async def fill_login(pilot: Pilot[object], user: str, password: str) -> None:
    screen = pilot.app.screen
    screen.query_one("#user", Input).value = user
    field = screen.query_one("#password", Input)
    field.value = password
    field.focus()
    await pilot.pause()


def offered(app: LabchatApp) -> bool:
    """The login screen asks whether to create a new account."""
    login = app.login_screen
    return login is not None and bool(login.query_one("#create").display)


async def settle_login(pilot: Pilot[object]) -> None:
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause(0.1)


#: The groups of pictures, by the name the command line takes.
GROUPS = ("room", "classroom")


async def main(groups: tuple[str, ...] = GROUPS) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    if "room" in groups:
        await room_scenes()
    if "classroom" in groups:
        await classroom_scenes()


async def room_scenes() -> None:
    """Logging in, the room, the commands: the pictures of the guide's first chapters."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        key = load_or_create_server_key(work / "server.key")
        relay = Relay(Store(work / "server.db"), ServerChannel(key), RelayConfig(server_name="physics-lab"))
        server = await serve("127.0.0.1", 0, relay)
        host, port = server.address
        try:
            bob = await person(server, "bob", work)
            carol = await person(server, "carol", work)
            bob.submit("morning! is the printer on the 2nd floor working?")
            carol.submit("it jammed again 🙃 use the one by the stairs")
            await bob.wait_drained()
            await carol.wait_drained()

            known = KnownServers(work / "known_servers")
            app = make_app(host, port, 0, known_servers=known, tz=UTC, config=ClientConfig(), seat="")
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                shot(app, "login")

                await fill_login(pilot, "alice", "wrong")
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, TrustScreen))
                shot(app, "trust")
                await pilot.press("enter")
                await until(pilot, lambda: offered(app))
                await settle_login(pilot)
                shot(app, "create")
                await pilot.press("enter")
                await until(pilot, lambda: app.room.logged_in)

                # Alice registered with "wrong"; log out and show the wrong-password error.
            await app_again(server, known, bob, carol)
        finally:
            if not stopped:
                await server.stop(grace_s=0)


async def app_again(server: RelayServer, known: KnownServers, bob: ChatClient, carol: ChatClient) -> None:
    global stopped
    host, port = server.address
    app = make_app(host, port, 0, known_servers=known, tz=UTC, seat="")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await fill_login(pilot, "alice", "typo")
        await pilot.press("enter")
        await until(
            pilot,
            lambda: (
                app.login_screen is not None
                and app.login_screen.query_one("#login-status").has_class("-error")
            ),
        )
        shot(app, "login-error")

        await fill_login(pilot, "alice", "wrong")
        await pilot.press("enter")
        await until(pilot, lambda: app.room.logged_in)
        bob.submit("alice wrote most of the plot script, ask her")
        carol.submit("/me waves")
        await bob.wait_drained()
        await carol.wait_drained()
        room = app.room
        room.composer.input.cursor_blink = False
        for line in ("sure, send it over [after lunch]", "/msg carol coffee at 3?", "/who"):
            room.composer.focus_input(line)
            await pilot.press("enter")
        code = "```python\ndef scale(ys):\n    return [y * 2 for y in ys]\n```"
        bob.submit(f"the plot is off by 2, here:\n{code}")
        await bob.wait_drained()
        bob.submit("/msg alice thanks!")
        await until(pilot, lambda: "[private] <bob> thanks!" in room.log_view.plain_lines())
        room.composer.focus_input("/msg dave are you in today?")
        await pilot.press("enter")
        await until(pilot, lambda: "not sent" in room.log_view.plain_lines()[-1])
        await settle(pilot)
        shot(app, "room")

        room.composer.focus_input("thanks @")
        await pilot.press("tab", "tab")
        await settle(pilot)
        shot(app, "completion")
        room.composer.focus_input("")

        carol.submit("/away lunch")
        await until(pilot, lambda: room.user_list.away_reason("carol") == "lunch")
        await settle(pilot)
        shot(app, "away")

        room.composer.focus_input("/search printer")
        await pilot.press("enter")
        await until(pilot, lambda: any("with “printer”" in line for line in room.log_view.plain_lines()))
        await settle(pilot)
        shot(app, "search")

        room.composer.focus_input("/help")
        await pilot.press("enter")
        await settle(pilot)
        shot(app, "help")

        await server.stop(grace_s=0)  # the server goes away: the app keeps trying by itself
        stopped = True
        await until(pilot, lambda: "reconnecting" in str(room.status.render()))
        await settle(pilot)
        shot(app, "reconnecting")
        await pilot.press("ctrl+q")


LAB3 = """\
def bubble_sort(xs):
    \"\"\"Exercise 1: sort xs in place, smallest first.\"\"\"
    ...
"""


async def classroom_scenes() -> None:
    """A class as the guide's "Running a class" tells it: the teacher (an admin) and three students
    on line-mode clients, and the app as a fourth student (dewi), then as the teacher."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        key = load_or_create_server_key(work / "server.key")
        store = Store(work / "server.db")
        store.create_account("teacher", "teacher-pw")  # labchat-admin add teacher
        store.set_admin("teacher", True)  # labchat-admin grant teacher
        channel = ServerChannel(key)
        channel.discovery_name = "physics-lab"  # what labchat-server --name physics-lab answers
        server = await serve("127.0.0.1", 0, Relay(store, channel, RelayConfig(server_name="physics-lab")))
        try:
            teacher = await person(server, "teacher", work, rooms=("cs101",), seat="desk")
            teacher.submit("/topic Lab 3: sorting")
            teacher.submit("good morning! today: exercises 1-3 of lab 3")
            students = {
                name: await person(server, name, work, rooms=("cs101",), seat=seat)
                for name, seat in (("budi", "PC-14"), ("ani", "PC-03"), ("cici", "PC-07"))
            }
            students["budi"].submit("morning!")
            for client in (teacher, *students.values()):
                await client.wait_drained()
            known = KnownServers(work / "known_servers")
            await student_view(server, known, work, teacher, students)
            await teacher.close()
            await teacher_view(server, known, students)
        finally:
            await server.stop(grace_s=0)


async def student_view(
    server: RelayServer, known: KnownServers, work: Path, teacher: ChatClient, students: dict[str, ChatClient]
) -> None:
    """dewi finds the server, logs in, votes, writes in quiet mode and gets the teacher's file."""
    host, port = server.address
    app = make_app(
        "localhost", port, 0, known_servers=known, tz=UTC, discover_host=host, rooms=("cs101",), seat="PC-21"
    )
    async with app.run_test(size=CLASS_SIZE) as pilot:
        await pilot.pause()
        login = app.login_screen
        assert login is not None
        await pilot.click("#find")
        await until(pilot, lambda: isinstance(app.screen, ServersScreen))
        await pilot.pause(0.1)
        shot(app, "find-servers")
        await pilot.press("enter")  # the one highlighted: physics-lab
        await until(pilot, lambda: app.screen is login and app.settings.server_host == host)
        await fill_login(pilot, "dewi", "dewi-pw")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TrustScreen))
        await pilot.press("enter")
        await until(pilot, lambda: offered(app))
        await pilot.press("enter")
        room = app.room
        await until(pilot, lambda: room.logged_in and room.current_room == "cs101")
        room.composer.input.cursor_blink = False

        teacher.submit('/poll "Done with exercise 2?" yes | no | stuck')
        for client, choice in zip(students.values(), (1, 1, 3), strict=True):
            await heard(client, lambda e: isinstance(e, ev.PollShown) and not e.closed)
            client.submit(f"/vote {choice}")
            await client.wait_drained()
        card = room.poll_card
        await until(pilot, lambda: card.display)
        await pilot.press("alt+v")
        await until(pilot, lambda: card.has_focus)
        await pilot.press("2")
        await until(pilot, lambda: card.poll is not None and card.poll.your_choice == 2)
        await settle(pilot)
        shot(app, "poll")

        teacher.submit("/poll close")
        await until(pilot, lambda: card.poll is not None and card.poll.closed)
        await settle(pilot)
        shot(app, "poll-results")
        await pilot.press("escape")

        teacher.submit("/quiet on 20")
        await until(pilot, lambda: room.status.quiet != "")
        room.composer.focus_input("is exercise 3 graded?")
        await pilot.press("enter")
        await until(pilot, lambda: "[to the operators] is exercise 3 graded?" in room.log_view.plain_lines())
        await settle(pilot)
        shot(app, "quiet")

        teacher.submit("/quiet off")
        await until(pilot, lambda: room.status.quiet == "")
        lab3 = work / "lab3.py"
        lab3.write_text(LAB3, encoding="utf-8")
        teacher.submit(f"/send {lab3}")
        tray = room.file_tray
        await until(pilot, lambda: bool(tray.cards) and all(card._ready for card in tray.cards.values()))
        room.composer.focus_input("/hand where do I save it?")
        await pilot.press("enter")
        await until(pilot, lambda: room.status.hand != "")
        await settle(pilot)
        shot(app, "file-offer")
        room.composer.focus_input("/hand down")  # found it: a hand stays up until lowered or done
        await pilot.press("enter")
        await until(pilot, lambda: room.status.hand == "")
        await pilot.press("ctrl+q")


async def teacher_view(server: RelayServer, known: KnownServers, students: dict[str, ChatClient]) -> None:
    """The students raise their hands; the teacher, in the app, sees the queue and takes the first."""
    for name, question in (("budi", "segfault in exercise 2"), ("ani", ""), ("cici", "how do I submit?")):
        students[name].submit(f"/hand {question}".rstrip())
        await students[name].wait_drained()
    host, port = server.address
    app = make_app(host, port, 0, known_servers=known, tz=UTC, rooms=("cs101",), seat="desk")
    async with app.run_test(size=TEACHER_SIZE) as pilot:
        await pilot.pause()
        await fill_login(pilot, "teacher", "teacher-pw")
        await pilot.press("enter")
        room = app.room
        panel = room.help_queue
        await until(pilot, lambda: room.logged_in and room.current_room == "cs101")
        await until(pilot, lambda: panel.display and len(panel.entries) == 3)
        room.composer.input.cursor_blink = False
        await pilot.press("alt+q")
        await pilot.press("n")
        await until(pilot, lambda: panel.entries[0].taken_by == "teacher")
        await settle(pilot)
        shot(app, "queue")

        await pilot.press("escape")
        room.composer.focus_input('/poll "Which sort is stable?" bubble | selection | quick')
        await pilot.press("enter")
        for client, choice in zip(students.values(), (1, 1, 2), strict=True):
            await heard(client, lambda e: isinstance(e, ev.PollShown) and e.question.startswith("Which"))
            client.submit(f"/vote {choice}")
            await client.wait_drained()
        card = room.poll_card
        await until(pilot, lambda: card.poll is not None and card.poll.voters == 3)
        await settle(pilot)
        shot(app, "poll-tally")
        await pilot.press("ctrl+q")


if __name__ == "__main__":
    chosen = tuple(sys.argv[1:]) or GROUPS
    unknown = [group for group in chosen if group not in GROUPS]
    if unknown:
        sys.exit(f"screenshots.py: unknown group {unknown[0]!r}: choose from {', '.join(GROUPS)}")
    asyncio.run(main(chosen))
