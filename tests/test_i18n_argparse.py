"""argparse's own words (the help's headings, its errors) in the user's language, in every command:
they come from labchat's catalogue, and English stays exactly argparse's."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from labchat import i18n
from labchat.bench import cli as bench_cli
from labchat.client import cli as client_cli
from labchat.netem import cli as netem_cli
from labchat.server import admin as server_admin
from labchat.server import cli as server_cli
from labchat.tui import web

Main = Callable[[list[str]], int]

#: Every command, and arguments that get it past its required positionals.
COMMANDS: list[tuple[Main, str, list[str]]] = [
    (client_cli.main, "labchat", ["127.0.0.1", "8080", "0"]),
    (server_cli.main, "labchat-server", ["127.0.0.1"]),
    (server_admin.main, "labchat-admin", ["list"]),
    (web.main, "labchat-web", ["127.0.0.1", "8080"]),
    (bench_cli.main, "labchat-bench", []),
    (netem_cli.main, "labchat-netem", ["--listen", ":0", "--server", "127.0.0.1:1"]),
]


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    """The language is process-wide: every test here leaves it as the rest of the suite expects."""
    yield
    i18n.set_language("en")


def run(main: Main, argv: list[str]) -> int:
    """The command's exit status, whether it returns it or argparse exits."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(("main", "prog", "rest"), COMMANDS)
def test_help_headings_in_indonesian(
    main: Main, prog: str, rest: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(main, ["--lang", "id", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"penggunaan: {prog} ")
    assert "\nopsi:\n" in out
    assert "tampilkan bantuan ini lalu keluar" in out
    assert "usage:" not in out and "show this help" not in out


@pytest.mark.parametrize(("main", "prog", "rest"), COMMANDS)
def test_a_bad_flag_is_one_indonesian_line(
    main: Main, prog: str, rest: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(main, ["--lang", "id", *rest, "--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"{prog}: ")
    assert "argumen tidak dikenal: --bogus" in err


def test_argparse_errors_in_indonesian(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(client_cli.main, ["127.0.0.1", "port", "0", "--lang", "id"]) == 2
    assert capsys.readouterr().err == (
        "labchat: argumen server_port: nilai int tidak valid: 'port' (lihat --help)\n"
    )
    assert run(server_admin.main, ["--lang", "id", "frob"]) == 2
    assert "pilihan tidak valid: 'frob' (pilih salah satu: 'list'," in capsys.readouterr().err


def test_english_is_argparses_own(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(client_cli.main, ["--lang", "en", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: labchat ")
    assert "\npositional arguments:\n" in out and "\noptions:\n" in out
    assert "show this help message and exit" in out
    assert run(client_cli.main, ["127.0.0.1", "port", "0"]) == 2
    assert (
        capsys.readouterr().err == "labchat: argument server_port: invalid int value: 'port' (see --help)\n"
    )


def test_argparse_still_reads_the_words_through_its_module_globals() -> None:
    """The hook relies on argparse calling `_`/`ngettext` from its own module at run time: a Python
    that stopped doing so would show English silently; this fails instead."""
    i18n.set_language("id")
    assert argparse._ is i18n._argparse_gettext  # type: ignore[attr-defined]
    parser = argparse.ArgumentParser(prog="x")
    assert "opsi" in parser.format_help()
    assert parser.format_usage().startswith("penggunaan: x")


def test_the_locale_chooses_argparses_language_in_a_fresh_process() -> None:
    """LANGUAGE=id, no --lang: a real `labchat` process, whose argparse was imported the usual way."""
    env = {**os.environ, "LANGUAGE": "id", "LC_ALL": "", "LANG": ""}
    done = subprocess.run(
        [sys.executable, "-c", "from labchat.client.cli import main; raise SystemExit(main())", "--bogus"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == "labchat: argumen tidak dikenal: --bogus (lihat --help)\n"
