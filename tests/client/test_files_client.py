"""Files on the client's side (docs/protocol.md 21.5, 21.6): safe names, the temporary file and its
verified rename, folders packed on the fly and unpacked safely, the typed commands, and the client
core against a real server."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labchat.client import commands
from labchat.client.downloads import (
    DOWNLOADS_ENV,
    FolderSource,
    Incoming,
    SaveError,
    candidates,
    default_downloads_dir,
    safe_name,
    unpack_folder,
)
from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.server.relay import RelayConfig
from tests.helpers import connect, start_server

# ---------------------------------------------------------------- names (21.5)


@pytest.mark.parametrize(
    ("offered", "saved"),
    [
        ("lab3.py", "lab3.py"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("..", "file"),
        (".bashrc", "bashrc"),
        ("...hidden...", "hidden"),
        ("notes. . .", "notes"),
        ("a\x00b\x1fc\x7fd\x85e", "a_b_c_d_e"),
        ('w<i>n:d"o|w?s*.txt', "w_i_n_d_o_w_s_.txt"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("LPT9.tar.gz", "_LPT9.tar.gz"),
        ("COM10.txt", "COM10.txt"),
        ("console.txt", "console.txt"),
        ("", "file"),
    ],
)
def test_safe_name_follows_the_rules_of_21_5(offered: str, saved: str) -> None:
    assert safe_name(offered) == saved


@given(st.text(max_size=300))
def test_any_name_becomes_one_safe_component(name: str) -> None:
    safe = safe_name(name)
    assert safe and "/" not in safe and "\\" not in safe and not safe.startswith(".")
    assert not safe.endswith((".", " ")) and len(safe.encode("utf-8", "surrogatepass")) <= 255
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in '<>:"|?*' for c in safe)


def test_candidates_never_overwrite_and_keep_the_extension() -> None:
    assert candidates("lab3.py")[:3] == ["lab3.py", "lab3 (1).py", "lab3 (2).py"]
    assert candidates("data.tar.gz")[1] == "data (1).tar.gz"
    assert candidates("README")[1] == "README (1)"


def test_downloads_dir_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DOWNLOADS_ENV, str(tmp_path / "here"))
    assert default_downloads_dir() == tmp_path / "here"
    monkeypatch.delenv(DOWNLOADS_ENV)
    assert default_downloads_dir().name == "labchat"


# ---------------------------------------------------------------- the file on disk


def test_incoming_writes_beside_the_target_then_takes_a_free_name(tmp_path: Path) -> None:
    (tmp_path / "lab3.py").write_text("mine")
    incoming = Incoming(tmp_path, "../lab3.py", 9)
    assert incoming.part.parent == tmp_path and incoming.part.name.startswith(".")
    incoming.write(0, b"print(1)\n")
    incoming.write(9, b"print(2)\n")
    saved = incoming.finish()
    assert saved == tmp_path / "lab3 (1).py" and saved.read_bytes() == b"print(1)\nprint(2)\n"
    assert (tmp_path / "lab3.py").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab3 (1).py", "lab3.py"]


def test_discard_leaves_nothing(tmp_path: Path) -> None:
    incoming = Incoming(tmp_path, "x.bin", 1)
    incoming.write(0, b"partial")
    incoming.discard()
    assert list(tmp_path.iterdir()) == []


def test_a_downloads_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(SaveError, match="cannot use the downloads folder"):
        Incoming(tmp_path / "taken" / "sub", "x", 1)


# ---------------------------------------------------------------- folders (21.6)


def make_tree(root: Path) -> None:
    (root / "src" / "deep").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "src" / "deep" / "data.bin").write_bytes(os.urandom(5000))
    (root / "empty").mkdir()
    (root / "README").write_text("read me\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("/etc/passwd")


def test_folder_source_is_a_tar_stream_with_no_links_readable_at_any_offset(tmp_path: Path) -> None:
    root = tmp_path / "lab3"
    make_tree(root)
    source = FolderSource(root)
    whole = source.read_at(0, source.size)
    assert len(whole) == source.size and source.digest() == hashlib.sha256(whole).digest()
    assert source.read_at(1000, 3000) == whole[1000:4000]  # a resumed upload starts mid-stream
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
        names = tar.getnames()
        assert "lab3/link" not in names and all(n == "lab3" or n.startswith("lab3/") for n in names)
        assert tar.extractfile("lab3/src/deep/data.bin").read() == (root / "src/deep/data.bin").read_bytes()  # type: ignore[union-attr]
    source.close()


def test_folder_round_trip_unpacks_into_a_new_folder_with_nothing_executable(tmp_path: Path) -> None:
    root = tmp_path / "lab3"
    make_tree(root)
    source = FolderSource(root)
    archive = tmp_path / "stream.tar"
    archive.write_bytes(source.read_at(0, source.size))
    out = tmp_path / "out"
    (out / "lab3").mkdir(parents=True)  # taken: a new folder is made beside it
    saved = unpack_folder(archive, out, "lab3")
    assert saved == out / "lab3 (1)"
    assert (saved / "src" / "main.py").read_text() == "print('hi')\n"
    assert (saved / "empty").is_dir() and not (saved / "link").exists()
    assert not (saved / "run.sh").stat().st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.mark.parametrize(
    "bad",
    ["absolute", "dotdot", "symlink", "hardlink", "device", "outside"],
)
def test_a_hostile_folder_is_refused_whole_and_leaves_nothing(tmp_path: Path, bad: str) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        good = tarfile.TarInfo("top/ok.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        info = tarfile.TarInfo(
            {"absolute": "/tmp/evil", "dotdot": "top/../../evil", "outside": "other/evil"}.get(
                bad, "top/evil"
            )
        )
        if bad == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif bad == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, "top/ok.txt"
        elif bad == "device":
            info.type = tarfile.CHRTYPE
        tar.addfile(info, io.BytesIO(b""))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SaveError, match="refused the folder"):
        unpack_folder(archive, out, "top")
    assert list(out.iterdir()) == []


# ---------------------------------------------------------------- typed commands


def test_file_commands_parse() -> None:
    assert commands.parse("/send lab3.py") == commands.Send("lab3.py", None, "lab3.py")
    assert commands.parse("/send lab3.py bob") == commands.Send("lab3.py", "bob", "lab3.py bob")
    assert commands.parse('/send "my lab.py" bob') == commands.Send("my lab.py", "bob", '"my lab.py" bob')
    assert commands.parse("/accept 7") == commands.Accept(7)
    assert commands.parse("/DECLINE 7") == commands.Decline(7)
    assert commands.parse("/open 12") == commands.Open(12)
    assert commands.parse("/files") == commands.Files()
    for bad in ("/send", "/accept", "/accept x", "/decline -1", "/open 0", '/send "open'):
        assert isinstance(commands.parse(bad), commands.Invalid)
    assert {"send", "accept", "files", "open"} <= set(commands.command_names())


# ---------------------------------------------------------------- the client core against a server

needs_files = pytest.mark.skipif(
    not RelayConfig().capabilities & m.CAP_FILES, reason="the relay does not take files yet"
)


@needs_files
async def test_send_accept_files_open_through_a_real_server(tmp_path: Path) -> None:
    server = await start_server(tmp_path)
    ana = await connect(server, "ana", tmp_path=tmp_path)
    budi = await connect(server, "budi", tmp_path=tmp_path)
    budi.client.downloads_dir = tmp_path / "dl"
    try:
        root = tmp_path / "lab3"
        make_tree(root)
        answer = ana.client.submit(f"/send {root}")
        assert not answer.error and "offering lab3" in answer.local_lines[0]
        offer = await budi.wait_for(ev.FileOffered, timeout=10)
        assert offer.folder and offer.sender == "ana" and offer.room == "lobby"
        assert not budi.client.submit(f"/accept {offer.file_id}").error
        done = await budi.wait_for(ev.FileDone, timeout=20)
        saved = Path(done.path or "")
        assert (
            saved == tmp_path / "dl" / "lab3" and (saved / "src" / "main.py").read_text() == "print('hi')\n"
        )
        assert budi.client.submit(f"/open {offer.file_id}").local_lines == (str(saved),)
        lines = budi.client.submit("/files").local_lines
        assert lines[0] == "files in #lobby:" and f"{offer.file_id}: lab3" in lines[1] and "done" in lines[1]
        assert budi.client.submit("/accept 999").error
        assert ana.client.submit(f"/send {tmp_path / 'nope'}").local_lines[0].startswith("no such file")
        [up] = [e for e in ana.of(ev.FileDone) if e.direction == "up"] or [await ana.wait_for(ev.FileDone)]
        assert up.sha256 == offer.sha256
    finally:
        await ana.close()
        await budi.close()
        await server.stop(grace_s=0.0)


# ---------------------------------------------------------------- line mode words (the contract)


def test_line_mode_words_and_json_records_of_file_events() -> None:
    from labchat.client.plain import file_record, file_text

    offer = ev.FileOffered(7, "lobby", None, "alice", "lab3.py", 4300, "ab" * 32, "text/x-python", False, 1.0)
    assert file_text(offer) == "alice offers lab3.py (4.2 KB, python) — /accept 7, /decline 7"
    assert file_text(offer, "alice").startswith("you offer lab3.py")
    progress = ev.FileProgress(7, "lab3.py", "down", 42, 100, 1.2 * 1024 * 1024, 2.1)
    assert file_text(progress) == "lab3.py: 42% 1.2 MB/s 3 s left"
    done = ev.FileDone(7, "lab3.py", "down", "/home/x/Downloads/labchat/lab3.py", "ab" * 32)
    assert file_text(done) == "saved lab3.py to /home/x/Downloads/labchat/lab3.py (verified)"
    rec = file_record(offer, 2.0, {}, "budi")
    assert (
        rec["type"] == "file_offer" and rec["id"] == 7 and rec["from"] == "alice" and rec["room"] == "lobby"
    )
    assert rec["size"] == 4300 and rec["sha256"] == "ab" * 32 and rec["to"] is None
    details = {"size": 100, "sha256": "ab" * 32, "from": "alice", "room": "lobby", "to": None}
    rec = file_record(progress, 2.0, details)
    assert (rec["type"], rec["done"], rec["direction"], rec["eta"]) == ("file_progress", 42, "down", 2.1)
    assert rec["from"] == "alice" and rec["sha256"] == "ab" * 32
    rec = file_record(done, 2.0, details)
    assert rec["type"] == "file_done" and rec["path"].endswith("lab3.py")
    failed = ev.FileFailed(7, "lab3.py", "down", "the disk is full")
    assert file_record(failed, 2.0, details)["text"] == "lab3.py not saved: the disk is full"


def test_a_full_disk_is_one_line_and_removes_the_partial_file(tmp_path: Path) -> None:
    import errno

    class FullDisk(io.BytesIO):
        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    incoming = Incoming(tmp_path, "big.iso", 3)
    incoming.write(0, b"first bytes")
    incoming._file.close()
    incoming._file = FullDisk()  # type: ignore[assignment]
    with pytest.raises(SaveError, match=r"^the disk is full: .* has no room for it$"):
        incoming.write(11, b"more")
    assert list(tmp_path.iterdir()) == []
