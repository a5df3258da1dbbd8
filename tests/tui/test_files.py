"""Files in the app (protocol 21): offer cards, progress, saved files and the viewer, driven with the
events of the client core (protocol/events.py files block) as the network worker posts them.

The typed commands a card sends (/accept 7, /decline 7) are recorded where the app hands lines to the
client core, and answered as the core answers them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Button, ProgressBar, Static

from labchat.client.core import Submitted
from labchat.protocol import events as ev
from labchat.tui import file_words
from labchat.tui import messages as msg
from labchat.tui.app import LabchatApp
from labchat.tui.screens.file_viewer import MAX_VIEW_BYTES, FileViewer, view_problem
from labchat.tui.widgets.file_cards import FileCard

from .scenes import T0, conversation, play, scene_app
from .util import log_lines, wait_until

SIZE = (80, 24)
Compare = Callable[..., bool]

LAB3 = '''"""Lab 3: fit a line to the pendulum data."""
import numpy as np


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    slope, intercept = np.polyfit(xs, ys, 1)
    return slope, intercept  # g is 4 pi^2 / slope
'''


def offer(file_id: int = 7, sender: str = "bob", to: str | None = None) -> ev.FileOffered:
    room = None if to else "lobby"
    return ev.FileOffered(
        file_id, room, to, sender, "lab3.py", 4300, "ab" * 32, "text/x-python", False, T0 + 250
    )


def progress(done: int, file_id: int = 7, direction: str = "down") -> ev.FileProgress:
    eta = (4300 - done) / 1500 if done < 4300 else 0.0
    return ev.FileProgress(file_id, "lab3.py", direction, done, 4300, 1500.0, eta)


def recording(app: LabchatApp) -> list[str]:
    """The lines the room hands to the client core, answered as the core answers them."""
    sent: list[str] = []

    def submit(line: str) -> Submitted:
        sent.append(line)
        return Submitted((f"ok: {line}",))

    app.room._submit = submit  # type: ignore[method-assign]
    return sent


async def post(pilot: Pilot[object], *events: ev.Event) -> None:
    app = pilot.app
    assert isinstance(app, LabchatApp)
    await play(pilot, [msg.CoreEvent(app.attempt, event) for event in events])


async def settled(pilot: Pilot[object]) -> None:
    """Every card mounted and laid out, nothing moving: a picture taken now is always the same."""
    app = pilot.app
    assert isinstance(app, LabchatApp)
    await wait_until(pilot, lambda: all(card._ready for card in app.room.file_tray.cards.values()))
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    log = app.room.log_view  # the tray took lines from the log: the picture shows the newest
    log.jump_to_bottom()
    await wait_until(pilot, lambda: log.scroll_y == log.max_scroll_y)
    await pilot.pause()


def card_of(app: LabchatApp, direction: str = "down", file_id: int = 7) -> FileCard:
    card = app.room.file_tray.card(direction, file_id)
    assert card is not None
    return card


def shown(card: FileCard) -> set[str]:
    return {str(b.label) for b in card.query(Button) if b.display}


def test_words() -> None:
    assert file_words.offer_line(offer()) == "bob offers lab3.py (4.2 KB, python) — /accept 7, /decline 7"
    assert file_words.offer_title(offer(to="alice")) == "bob offers you lab3.py (4.2 KB, python)"
    assert (
        file_words.offer_line(offer(sender="alice"), me="alice")
        == "you offer lab3.py (4.2 KB, python) in #lobby (file 7)"
    )
    assert file_words.progress_words(progress(1806)) == "42% 1.5 KB/s 2 s left"
    assert file_words.progress_words(progress(4300)) == "100% 1.5 KB/s"
    assert file_words.human_size(512) == "512 bytes"
    assert file_words.kind_word("image/png", "a.png") == "png image"
    assert file_words.kind_word("", "Notes.TXT") == "txt"
    assert file_words.kind_word("", "README") == "file"


def test_view_problem(tmp_path: Path) -> None:
    text = tmp_path / "lab3.py"
    text.write_text(LAB3)
    assert view_problem(text) is None
    binary = tmp_path / "scope.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    assert view_problem(binary) == f"scope.png is a binary file: open {binary}"
    big = tmp_path / "big.csv"
    big.write_text("1,2\n" * (MAX_VIEW_BYTES // 4 + 1))
    assert (view_problem(big) or "").startswith("big.csv is too big to show here (256 KB, at most 256 KB)")
    latin = tmp_path / "old.txt"
    latin.write_bytes("café".encode("latin-1"))
    assert view_problem(latin) == f"old.txt is not UTF-8 text: open {latin}"
    assert (view_problem(tmp_path / "gone.txt") or "").startswith("cannot read")


async def test_offer_accept_progress_saved_open(tmp_path: Path) -> None:
    saved = tmp_path / "lab3.py"
    saved.write_text(LAB3)
    app = scene_app()
    async with app.run_test(size=SIZE) as pilot:
        sent = recording(app)
        await play(pilot, conversation(app))
        await post(pilot, offer())
        assert "bob offers lab3.py (4.2 KB, python) — /accept 7, /decline 7" in log_lines(app)
        card = card_of(app)
        assert app.room.file_tray.display and shown(card) == {"Accept", "Decline"}

        await pilot.click(".file-accept")
        assert sent == ["/accept 7"]
        assert card.state == "accepted" and shown(card) == set()
        assert card.query_one(ProgressBar).display

        await post(pilot, progress(1806))
        assert card.query_one(ProgressBar).percentage == 0.42
        assert "42% 1.5 KB/s 2 s left" in str(card.query_one(".file-status", Static).content)

        await post(pilot, progress(4300), ev.FileDone(7, "lab3.py", "down", str(saved), "ab" * 32))
        assert f"saved lab3.py to {saved} (verified)" in log_lines(app)
        assert card.state == "saved" and shown(card) == {"Open", "×"}
        assert not card.query_one(ProgressBar).display

        await pilot.click(".file-open")
        await wait_until(pilot, lambda: isinstance(app.screen, FileViewer))
        assert "lab3.py  (python, 7 lines)" in str(app.screen.query_one("#viewer-title", Static).content)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, FileViewer))

        await pilot.click(".file-dismiss")
        await pilot.pause()
        assert app.room.file_tray.card("down", 7) is None and not app.room.file_tray.display

        # /open ID of the saved file opens it too, without asking the core.
        app.room.run_line("/open 7")
        await wait_until(pilot, lambda: isinstance(app.screen, FileViewer))
        await pilot.press("escape")
        assert sent == ["/accept 7"]


async def test_typed_answers_follow_the_card(tmp_path: Path) -> None:
    app = scene_app()
    async with app.run_test(size=SIZE) as pilot:
        sent = recording(app)
        await play(pilot, conversation(app))
        await post(pilot, offer(7), offer(8, sender="carol", to="alice"))
        assert file_words.offer_title(offer(8, sender="carol", to="alice")) == card_of(app, file_id=8).title
        app.room.run_line("/accept 8")
        await pilot.pause()
        assert card_of(app, file_id=8).state == "accepted"
        await pilot.click(".file-decline")  # the first card: file 7
        await pilot.pause()
        assert sent == ["/accept 8", "/decline 7"]
        assert app.room.file_tray.card("down", 7) is None
        # An /open the app has no saved file for goes on to the core (which names the problem).
        app.room.run_line("/open 9")
        assert sent[-1] == "/open 9"


async def test_own_upload_and_failures(tmp_path: Path) -> None:
    binary = tmp_path / "scope.png"
    binary.write_bytes(b"\x89PNG\0\0")
    app = scene_app()
    async with app.run_test(size=SIZE) as pilot:
        await play(pilot, conversation(app))
        # Our own offer (the server tells the sender too): a log line, no card with Accept.
        await post(pilot, offer(11, sender="alice"), progress(2150, file_id=1, direction="up"))
        assert "you offer lab3.py (4.2 KB, python) in #lobby (file 11)" in log_lines(app)
        assert app.room.file_tray.card("down", 11) is None
        up = card_of(app, "up", 1)
        await pilot.pause()
        assert up.title == "sending lab3.py" and up.query_one(ProgressBar).percentage == 0.5
        await post(pilot, ev.FileDone(1, "lab3.py", "up", None, "ab" * 32))
        assert up.state == "sent" and "sent lab3.py: stored on the server (verified)" in log_lines(app)

        # A binary file is saved but has no Open; /open of it says why in one line.
        await post(pilot, offer(12), ev.FileDone(12, "scope.png", "down", str(binary), "cd" * 32))
        assert card_of(app, file_id=12).state == "saved" and shown(card_of(app, file_id=12)) == {"×"}
        app.room.run_line("/open 12")
        await pilot.pause()
        assert f"scope.png is a binary file: open {binary}" in log_lines(app)
        assert not isinstance(app.screen, FileViewer)

        await post(pilot, offer(13), ev.FileFailed(13, "lab3.py", "down", "the disk is full"))
        failed = card_of(app, file_id=13)
        assert failed.state == "failed" and failed.has_class("-failed")
        assert "lab3.py not saved: the disk is full" in log_lines(app)


# ---- snapshots


def test_offer_card_snapshot(snap_compare: Compare) -> None:
    async def offered(pilot: Pilot[object]) -> None:
        app = pilot.app
        assert isinstance(app, LabchatApp)
        await play(pilot, conversation(app))
        await post(pilot, offer())
        await settled(pilot)

    assert snap_compare(scene_app(), terminal_size=SIZE, run_before=offered)


def test_progress_snapshot(snap_compare: Compare) -> None:
    async def moving(pilot: Pilot[object]) -> None:
        app = pilot.app
        assert isinstance(app, LabchatApp)
        recording(app)
        await play(pilot, conversation(app))
        await post(pilot, offer())
        app.room.run_line("/accept 7")
        await post(pilot, progress(1806), progress(1075, file_id=2, direction="up"))
        await settled(pilot)

    assert snap_compare(scene_app(), terminal_size=SIZE, run_before=moving)


def test_viewer_snapshot(snap_compare: Compare, tmp_path: Path) -> None:
    saved = tmp_path / "lab3.py"
    saved.write_text(LAB3)

    async def viewing(pilot: Pilot[object]) -> None:
        app = pilot.app
        assert isinstance(app, LabchatApp)
        await play(pilot, conversation(app))
        app.room.open_file(saved)
        await wait_until(pilot, lambda: isinstance(app.screen, FileViewer))
        await pilot.pause()

    assert snap_compare(scene_app(), terminal_size=SIZE, run_before=viewing)
