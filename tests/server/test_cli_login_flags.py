"""The server's login flags: bad values get one line and exit 2, before anything is opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from labchat.server.cli import build_parser, main


@pytest.mark.parametrize("flags", [["--max-registrations-per-hour", "-1"], ["--login-workers", "0"]])
def test_bad_values_are_one_line(
    flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["127.0.0.1", "--db", str(tmp_path / "s.db"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labchat-server:") and "\n" not in err
    assert not (tmp_path / "s.db").exists()


def test_not_a_number_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["127.0.0.1", "--login-workers", "many"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labchat-server:") and "\n" not in err


def test_defaults() -> None:
    args = build_parser().parse_args(["127.0.0.1"])
    assert args.max_registrations_per_hour == 60 and args.login_workers == 2
