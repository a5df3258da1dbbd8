"""The app's words modules in Bahasa Indonesia: file and classroom sentences, the log's labels, dates
and the file viewer say the user's language, and English stays as it was."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date
from pathlib import Path

import pytest
from rich.console import Console
from rich.style import Style

from labchat import i18n
from labchat import transcript as tr
from labchat.client.downloads import SaveError, make_dir
from labchat.protocol import events as ev
from labchat.protocol.messages import Action
from labchat.server.formatting import _excerpt
from labchat.server.private_files import tighten_file
from labchat.tui import classroom_words, file_words, formatting
from labchat.tui.log_entry import Delivery, Entry, EntryKind, layout_entry
from labchat.tui.screens.file_viewer import view_problem

T0 = 1_764_583_200.0  # Monday 1 December 2025, 10:00 UTC


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    """The language is process-wide: every test leaves it English, as the rest of the suite expects."""
    yield
    i18n.set_language("en")


def offer(sender: str = "bob", to: str | None = None) -> ev.FileOffered:
    room = None if to else "lobby"
    return ev.FileOffered(7, room, to, sender, "lab3.py", 4300, "ab" * 32, "text/x-python", False, T0)


def test_file_words_in_indonesian() -> None:
    i18n.set_language("id")
    assert file_words.offer_title(offer(to="alice")) == "bob menawarkan lab3.py (4.2 KB, python) kepada Anda"
    assert file_words.offer_line(offer()) == "bob menawarkan lab3.py (4.2 KB, python) — /accept 7, /decline 7"
    progress = ev.FileProgress(7, "lab3.py", "down", 1806, 4300, 1500.0, 1.7)
    assert file_words.progress_words(progress) == "42% 1.5 KB/s sisa 2 detik"
    assert file_words.kind_word("image/png", "a.png") == "gambar png"
    assert file_words.kind_word("", "README") == "berkas"
    assert file_words.human_size(1) == "1 byte"
    failed = ev.FileFailed(7, "lab3.py", "down", "the server is gone")
    assert file_words.failed_line(failed) == "lab3.py tidak disimpan: the server is gone"


def test_classroom_words_in_indonesian() -> None:
    i18n.set_language("id")
    assert classroom_words.waiting_words(T0, T0 + 30) == "baru saja"
    assert classroom_words.waiting_words(T0, T0 + 65 * 60) == "1 jam 05 menit"
    assert classroom_words.quiet_words(T0 + 11.5 * 60, T0) == "hening: sisa 12 menit"
    raised = ev.RoomEvent("lab", T0, Action.HAND_RAISED, "budi", "budi", 3, "", "")
    assert classroom_words.hand_words(raised, "budi") == "tangan Anda terangkat: urutan ke-3"
    poll = ev.PollShown("lab", 3, "guru", "Selesai?", ("ya", "tidak"), False, True, (20, 3), 23, 0, ())
    assert classroom_words.poll_tally_line(poll) == "jajak pendapat #3: ya 20, tidak 3 (23 memilih)"


def test_classroom_words_stay_english() -> None:
    raised = ev.RoomEvent("lab", T0, Action.HAND_RAISED, "budi", "budi", 3, "", "")
    assert classroom_words.hand_words(raised, "budi") == "your hand is up: 3rd in line"
    assert classroom_words.waiting_words(T0, T0 + 65 * 60) == "1 h 05 min"


def test_dates_in_indonesian() -> None:
    today = date(2025, 12, 2)
    assert formatting.day_label(date(2025, 12, 1), today) == "Monday 1 December"
    i18n.set_language("id")
    assert formatting.day_label(date(2025, 12, 1), today) == "Senin, 1 Desember"
    assert formatting.day_label(date(2024, 8, 17), today) == "Sabtu, 17 Agustus 2024"
    assert formatting.stamp(T0, UTC, today) == "1 Des 10:00"


def rows(entry: Entry) -> list[str]:
    console = Console(width=120, color_system=None)
    return [row.text.rstrip() for row in layout_entry(entry, 120, console, lambda _name: Style(), "10:00")]


def test_log_labels_in_indonesian() -> None:
    i18n.set_language("id")
    failed = Entry(EntryKind.PRIVATE_OUT, T0, "ada waktu?", user="erin", own=True, delivery=Delivery.FAILED,
                   note="erin tidak daring")  # fmt: skip
    drawn = rows(failed)
    assert "(pribadi untuk erin) ada waktu?" in drawn[0]
    assert drawn[1].endswith("✗ tidak terkirim: erin tidak daring (Ctrl+R atau /retry untuk mengirim ulang)")
    assert failed.plain == "[pribadi untuk erin] ada waktu? [tidak terkirim: erin tidak daring]"
    pending = Entry(EntryKind.CHAT, T0, "halo", user="budi", own=True, delivery=Delivery.PENDING)
    assert rows(pending)[0].endswith("halo  mengirim…")


def test_file_viewer_problems_in_indonesian(tmp_path: Path) -> None:
    i18n.set_language("id")
    binary = tmp_path / "a.bin"
    binary.write_bytes(b"\0\1")
    assert view_problem(binary) == f"a.bin adalah berkas biner: buka {binary}"
    assert view_problem(tmp_path) == f"{tmp_path.name} bukan berkas"


def test_client_and_server_file_problems_in_indonesian(tmp_path: Path) -> None:
    """The download folder's and the server's own files' problems, as the user or operator reads them."""
    i18n.set_language("id")
    in_the_way = tmp_path / "Unduhan"
    in_the_way.write_text("a file where the folder should be")
    with pytest.raises(SaveError, match=r"^tidak bisa memakai folder unduhan .*Unduhan/labchat: "):
        make_dir(in_the_way / "labchat")
    db = tmp_path / "server.db"
    db.write_text("")
    db.chmod(0o644)
    assert tighten_file(db) == (
        f"{db} tadinya bisa dibaca pengguna lain (mode 644); sekarang dijadikan 600. "
        "Isinya mungkin sudah telanjur disalin"
    )
    assert _excerpt("x" * 1000).endswith("… (1000 karakter)")


def test_transcripts_in_indonesian() -> None:
    """/export and `labchat-admin export-room` write the words around the room's text in the language."""
    i18n.set_language("id")
    t = tr.Transcript(
        "cs101", 1_764_583_200_000, 1_764_590_400_000, topic="Lab 3",
        polls=(tr.PollResult(1_764_583_400_000, "guru", "Selesai?", ("ya", "tidak"), (20, 3), 23),),
        hands=(tr.Hand("budi", "PC-14", "segfault", 1_764_583_600_000),),
    )  # fmt: skip
    md = tr.to_markdown(t, UTC)
    assert md.startswith("# #cs101 — transkrip\n\n2025-12-01 10:00 sampai 2025-12-01 12:00\n\nTopik: Lab 3\n")
    assert "1. **Selesai?** dari guru pukul 10:03:20" in md
    assert "| Diangkat | Siswa | Tempat duduk | Pertanyaan | Ditangani oleh | Selesai |" in md
    assert "| masih menunggu |" in md
    page = tr.to_html(t, UTC)
    assert '<html lang="id">' in page
    assert "<li><b>Selesai?</b> dari guru pukul 10:03:20<ul>" in page
