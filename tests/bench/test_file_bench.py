"""`labchat-bench --mode file` end to end with a tiny file: real server, clients and TCP reference.

Behaviour only (the rows are filled, the file verified, chat measured before and during): the
figures themselves are the bench's to print, not a test's to time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labchat.bench.file_transfer import make_file, tcp_copy

pytestmark = pytest.mark.timeout(120)


def test_the_tcp_reference_copies_the_file_exactly(tmp_path: Path) -> None:
    source, target = tmp_path / "a.bin", tmp_path / "b.bin"
    digest = make_file(source, 3 * 1024 * 1024 + 5)
    assert tcp_copy(source, target) > 0
    assert target.read_bytes() == source.read_bytes() and len(digest) == 64


def test_file_mode_prints_a_verified_row_beside_the_tcp_copy_with_chat_without_and_during() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "labchat.bench", "--mode", "file", "--file-mb", "2", "--losses", "0",
         "--duration", "1", "--max-time", "90", "--json"],
        capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["mode"] == "file" and report["size_bytes"] == 2 * 1024 * 1024
    assert report["tcp_copy"]["mb_s"] > 0
    (row,) = report["rows"]
    assert row["error"] is None and row["verified"] is True
    assert row["total_s"] >= row["upload_s"] > 0 and row["of_tcp"] > 0
    assert row["chat_before_ms"]["n"] > 0 and row["chat_after_ms"]["n"] > 0
    # the ratio's reference is the chat without the file on both sides of it
    assert row["chat_reference_ms"]["n"] == row["chat_before_ms"]["n"] + row["chat_after_ms"]["n"]
    assert row["chat_reference_ms"]["p99"] is not None


def test_bad_losses_are_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "labchat.bench", "--mode", "file", "--losses", "two"],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--losses" in done.stderr
