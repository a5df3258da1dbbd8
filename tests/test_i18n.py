"""The class's language: every shown string is in the Indonesian catalogue, and `--lang` / the locale
choose it, in the commands, the app and line mode."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Button, Label, Static

from labchat import i18n
from labchat.client import cli as client_cli
from labchat.i18n_catalog import Message, extract, missing, render
from labchat.protocol.messages import NAME_RULE, ROOM_RULE
from labchat.server import admin as server_admin
from labchat.server import cli as server_cli
from labchat.server.transport import RelayServer
from labchat.tui import web
from labchat.tui.screens.login import LoginScreen
from labchat.tui.screens.trust import TrustScreen

from .tui.util import app_for, wait_until

#: `{name}`, `{name!r}`, `{count}`, a log line's `%s`, and Rich markup tags: a translation keeps every
#: one (the `%` ones in their order: they are positional).
PLACEHOLDER = re.compile(
    r"\{[a-z_]*(?:![rs])?\}|%(?:\.\d+)?[sdgf]|\[/?(?:bold|dim|italic|red|green|cyan|yellow)[a-z ]*\]|\[/\]"
)


def _placeholders(text: str) -> tuple[list[str], list[str]]:
    found = PLACEHOLDER.findall(text)
    return sorted(p for p in found if not p.startswith("%")), [p for p in found if p.startswith("%")]


@pytest.fixture(autouse=True)
def english_afterwards() -> Iterator[None]:
    """The language is process-wide: every test here leaves it as the rest of the suite expects."""
    yield
    i18n.set_language("en")


# ------------------------------------------------------------ the catalogue


def test_every_marked_string_is_a_literal() -> None:
    messages, problems = extract()
    assert problems == []
    assert len(messages) > 100


def test_a_string_built_inside_the_marker_is_refused(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "m.py").write_text(
        'from labchat.i18n import N_, _\nWORDS = {1: N_("one")}\n'
        'a = _(f"hi {x}")\nb = _("%s" % y)\nc = _(WORDS[1])\nd = _("fine {name}").format(name=1)\n',
        encoding="utf-8",
    )
    messages, problems = extract(package)
    assert [m.msgid for m in messages] == ["one", "fine {name}"]
    assert [p.split(":")[1] for p in problems] == ["3", "4"]


def test_every_shown_string_is_translated_into_indonesian() -> None:
    messages, _problems = extract()
    untranslated = [f"{m.where[0]}: {m.msgid!r}" for m in missing("id", messages)]
    hint = "run `python -m labchat.i18n_catalog` and translate:\n"
    assert untranslated == [], hint + "\n".join(untranslated)


def test_translations_keep_every_placeholder_and_markup_tag() -> None:
    catalogue = i18n.read_po(i18n.catalogue_path("id"))
    wrong = []
    for key, forms in catalogue.items():
        if not key:
            continue  # the header
        wanted = _placeholders(key.split("\0")[0])
        wrong += [(key, form) for form in forms if _placeholders(form) != wanted]
    assert wrong == []


def test_the_catalogue_file_is_as_the_tool_writes_it() -> None:
    """No hand edits that the next `python -m labchat.i18n_catalog` would undo or lose (the `#:`
    source references are left out: they move with every edit above a string)."""
    path = i18n.catalogue_path("id")
    messages, _problems = extract()

    def entries(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("#:")]

    assert entries(render("id", messages, i18n.read_po(path))) == entries(path.read_text(encoding="utf-8"))


def test_the_name_rule_says_what_the_protocol_checks() -> None:
    assert i18n.name_rule() == NAME_RULE
    assert i18n.room_rule() == ROOM_RULE
    i18n.set_language("id")
    assert i18n.name_rule().startswith("1-20 karakter")


def test_po_reader_reads_what_the_writer_writes(tmp_path: Path) -> None:
    tricky = [
        Message('say "hi"\\now'),
        Message("two\nlines\n"),
        Message("tab\there"),
        Message("{count} file", "{count} files"),
    ]
    translations = {
        tricky[0].key: ['katakan "hai"\\sekarang'],
        tricky[1].key: ["dua\nbaris\n"],
        tricky[2].key: ["tab\tdi sini"],
        tricky[3].key: ["{count} berkas"],
    }
    path = tmp_path / "labchat.po"
    path.write_text(render("id", tricky, translations), encoding="utf-8")
    read = i18n.read_po(path)
    assert {k: v for k, v in read.items() if k} == translations
    catalogue = i18n.Catalogue(read)
    assert catalogue.ngettext("{count} file", "{count} files", 5) == "{count} berkas"
    assert catalogue.gettext("not in it") == "not in it"


def test_fuzzy_and_empty_translations_show_in_english(tmp_path: Path) -> None:
    path = tmp_path / "labchat.po"
    path.write_text(
        'msgid "Log in"\nmsgstr "Masuk"\n\n#, fuzzy\nmsgid "Cancel"\nmsgstr "Batalkan?"\n\n'
        'msgid "Close"\nmsgstr ""\n',
        encoding="utf-8",
    )
    catalogue = i18n.Catalogue(i18n.read_po(path))
    assert [catalogue.gettext(s) for s in ("Log in", "Cancel", "Close")] == ["Masuk", "Cancel", "Close"]


def test_a_broken_catalogue_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "labchat.po"
    path.write_text('msgid "a"\nmsgstr b\n', encoding="utf-8")
    with pytest.raises(i18n.CatalogueError, match=r"labchat\.po:2"):
        i18n.read_po(path)


def test_the_catalogues_ship_with_the_package() -> None:
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert '"locale/*/LC_MESSAGES/*.po"' in pyproject


# ------------------------------------------------------------ choosing the language


@pytest.mark.parametrize(
    ("name", "lang"),
    [
        ("id_ID.UTF-8", "id"),
        ("id", "id"),
        ("in_ID", "id"),
        ("Indonesian_Indonesia", "id"),
        ("en_GB.UTF-8", "en"),
        ("fr_FR@euro", "en"),
        ("C", None),
        ("POSIX", None),
        ("", None),
    ],
)
def test_locale_names(name: str, lang: str | None) -> None:
    assert i18n.language_of(name) == lang


def test_the_locale_variables_in_gettexts_order() -> None:
    assert i18n.language_from_locale({"LANGUAGE": "id:en", "LANG": "en_US.UTF-8"}) == "id"
    assert i18n.language_from_locale({"LC_ALL": "en_US.UTF-8", "LANG": "id_ID.UTF-8"}) == "en"
    assert i18n.language_from_locale({"LC_ALL": "C", "LANG": "id_ID.UTF-8"}) == "id"
    assert i18n.language_from_locale({"LC_MESSAGES": "id_ID"}) == "id"


def test_lang_flag_is_read_before_the_parser() -> None:
    assert i18n.lang_from_argv(["1.2.3.4", "--lang", "id"]) == "id"
    assert i18n.lang_from_argv(["--lang=en", "--lang=id"]) == "id"
    assert i18n.lang_from_argv(["--", "--lang", "id"]) is None
    assert i18n.lang_from_argv(["x"]) is None


@pytest.mark.parametrize(
    ("main", "prog", "rest"),
    [
        (client_cli.main, "labchat", ["127.0.0.1", "8080", "0"]),
        (server_cli.main, "labchat-server", ["127.0.0.1"]),
        (server_admin.main, "labchat-admin", ["list"]),
        (web.main, "labchat-web", ["127.0.0.1", "8080"]),
    ],
)
def test_an_unknown_language_is_one_line(main, prog, rest, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exited:
        main([*rest, "--lang", "fr"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"{prog}: invalid --lang 'fr': use en (English) or id (Bahasa Indonesia)")


@pytest.mark.parametrize(
    ("main", "words"),
    [
        (client_cli.main, "port UDP server (biasanya 8080)"),
        (server_cli.main, "alamat yang didengarkan"),
        (server_admin.main, "Kelola akun labchat."),
        (web.main, "Sajikan aplikasi labchat ke peramban web"),
    ],
)
def test_help_in_indonesian(main, words: str, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        main(["--lang", "id", "--help"])
    out = capsys.readouterr().out
    assert words in " ".join(out.split())
    assert "--lang LANG" in out  # flags are never translated


def test_line_mode_errors_in_indonesian(capsys: pytest.CaptureFixture[str]) -> None:
    assert client_cli.main(["127.0.0.1", "8080", "0", "--plain", "--lang", "id"]) == 2
    assert capsys.readouterr().err == "labchat: --plain memerlukan --user NAMA\n"
    assert client_cli.main(["127.0.0.1", "8080", "0", "--plain", "--user", "9x", "--lang", "id"]) == 2
    assert "nama pengguna '9x' tidak valid: 1-20 karakter" in capsys.readouterr().err


def test_admin_speaks_indonesian(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "server.db")
    assert server_admin.main(["--db", db, "--lang", "id", "remove", "nobody"]) == 1
    assert capsys.readouterr().err == "labchat-admin: tidak ada akun bernama 'nobody'\n"


def test_the_full_page_is_in_the_tabs_language() -> None:
    i18n.set_language("id")
    page = web.full_page(3)
    assert '<html lang="id">' in page
    assert "labchat penuh: 3 tab peramban sedang terbuka" in page


def test_web_passes_its_language_to_every_tab(tmp_path: Path) -> None:
    assert web.tab_command("127.0.0.1", 8080, tmp_path / "known", "id").endswith(" id")


# ------------------------------------------------------------ the app


async def test_the_login_and_trust_screens_in_indonesian(server: RelayServer, tmp_path: Path) -> None:
    i18n.set_language("id")
    app = app_for(server, tmp_path, trusted=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen))
        login = app.screen
        assert str(login.query_one("#login", Button).label) == "Masuk"
        labels = [str(label.render()) for label in login.query(Label)]
        assert "Kata sandi" in labels
        await pilot.press(*"9x", "tab", *"rahasia", "enter")
        await wait_until(pilot, lambda: login.query_one("#login-status").has_class("-error"))
        assert str(login.query_one("#login-status", Static).render()).startswith(
            "Nama pengguna '9x' tidak valid"
        )
        await pilot.press("backspace", "backspace", *"budi", "enter")  # the password is still there
        await wait_until(pilot, lambda: isinstance(app.screen, TrustScreen))
        assert app.screen.query_one("#trust-box").border_title == "Server baru"
        assert str(app.screen.query_one("#trust", Button).label) == "Percayai dan masuk (Enter)"


# ------------------------------------------------------------ room news (line mode and the app)


def test_room_news_in_indonesian() -> None:
    from labchat.client import room_news
    from labchat.protocol import events as ev
    from labchat.protocol.messages import Action

    mute = ev.RoomEvent("cs101", 0.0, Action.MUTE, "guru", "budi", 10, "berisik", "server words")
    hand = ev.RoomEvent("cs101", 0.0, Action.HAND_RAISED, "budi", "budi", 3, "segfault", "")
    moved = ev.RoomEvent("cs101", 0.0, Action.HAND_RAISED, "", "budi", 2, "segfault", "")
    english = room_news.describe(mute)
    assert english == "budi was muted for 10 min by guru: berisik"
    i18n.set_language("id")
    assert room_news.describe(mute) == "budi dibisukan selama 10 menit oleh guru: berisik"
    assert room_news.describe(hand) == "budi mengangkat tangan (urutan ke-3 dalam antrean): segfault"
    assert room_news.describe(hand, me="budi") == "Anda urutan ke-3 dalam antrean"
    assert room_news.describe(moved, me="budi") == "Anda maju: urutan ke-2 dalam antrean"
    # The --json words never change with the language.
    assert room_news.action_word(Action.MUTE) == "mute"
    assert room_news.mode_words(0xFF)[:2] == ["private", "moderated"]


def test_help_keeps_the_command_words_in_indonesian() -> None:
    """Commands are never translated: every /command of a help line is in its translation too."""
    from labchat.client import commands

    i18n.set_language("id")
    lines = commands.help_lines()
    assert lines[0] == "Perintah:"
    for english, translated in zip(commands.HELP_LINES, lines, strict=True):
        assert re.findall(r"/[a-z]+", english) == re.findall(r"/[a-z]+", translated), translated
    # Tab completion reads the English lines: the same names in every language.
    names = commands.command_names()
    assert "join" in names and "vote" in names
    invalid = commands.parse("/frobnicate")
    assert isinstance(invalid, commands.Invalid)
    assert invalid.error == "perintah /frobnicate tidak dikenal: ketik /help untuk melihat daftarnya"


# ------------------------------------------------------------ the commands as processes


@pytest.mark.timeout(60)
async def test_server_and_line_mode_in_indonesian(tmp_path: Path) -> None:
    """`--lang id` on the server and a --plain client; LANGUAGE=id (the locale) on a --json one,
    whose keys, types and command names stay as in English."""
    from .e2e.procs import PYTHON, env_for, spawn, spawn_server

    server = await spawn_server(tmp_path, tmp_path / "server.db", "--lang", "id")
    port = int((await server.expect(r"mendengarkan di UDP 127\.0\.0\.1:(\d+)")).group(1))
    await server.expect(r"klien terhubung dengan: labchat 127\.0\.0\.1")

    def client(user: str, *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        args = ("-m", "labchat.client", "127.0.0.1", str(port), "0", "--user", user, *extra)
        return spawn(PYTHON, *args, env=env or env_for(tmp_path))

    budi = await client("budi", "--plain", "--lang", "id")
    await budi.expect(r"-!- masuk sebagai budi ke .*, ruang ")
    ani = await client("ani", "--json", env={**env_for(tmp_path), "LANGUAGE": "id"})
    joined = await budi.expect(r"^\d\d:\d\d:\d\d \* ani bergabung$")
    assert joined
    presence = await ani.expect_json(type="presence")
    assert presence["text"].startswith("2 daring: ")
    budi.send("/frobnicate")
    await budi.expect(r"-!- galat: perintah /frobnicate tidak dikenal: ketik /help")
    budi.send("/help")
    await budi.expect(r"-!- Perintah:")
    budi.send("QUIT")
    assert await budi.wait() == 0
    left = await ani.expect_json(type="leave", user="budi")
    assert left["text"] == "budi keluar"
    ani.send("/quit")
    assert await ani.wait() == 0
    server.proc.terminate()
    await server.expect(r"mematikan server: memberi tahu \d+ klien")
    assert await server.wait() == 0
