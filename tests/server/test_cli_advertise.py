"""`labchat-server --advertise HOST:PORT` (docs/protocol.md 22.2): a bad value is one line and exit
2 before anything is opened; a good one is what the relay tells the other relays' clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from labchat.protocol import messages as m
from labchat.server.cli import main


@pytest.mark.parametrize("value", ["nowhere", "10.0.0.2:0", "10.0.0.2:70000", "::1:8080", "a b:80", ":80"])
def test_a_bad_advertise_is_one_line(value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["127.0.0.1", "--db", str(tmp_path / "s.db"), "--advertise", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labchat-server: invalid --advertise") and "\n" not in err
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("10.0.0.2:8080", ("10.0.0.2", 8080)),
        ("[fe80::1]:9000", ("fe80::1", 9000)),
        ("lab-2.school:1", ("lab-2.school", 1)),
    ],
)
def test_addresses_parse_and_print_back(text: str, address: tuple[str, int]) -> None:
    assert m.parse_relay_address(text) == address
    assert m.format_relay_address(*address) == text
