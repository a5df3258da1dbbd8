"""Keep the translation catalogues in step with the code: `python -m labchat.i18n_catalog [--check]`.

It finds every string given to `_()`, `ngettext()` or `N_()` in the labchat package (by reading the
source's syntax tree, so that a string built at run time inside `_()` is refused rather than missed;
`_(NAME)` of a constant marked with `N_()` is fine), then rewrites each
`labchat/locale/<lang>/LC_MESSAGES/labchat.po`: translations already there are kept, new strings get
an empty msgstr for the translator, strings the code no longer uses are dropped. `--check` changes
nothing and exits 1 when a catalogue lacks a string or a translation (what tests/test_i18n.py checks).
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .i18n import LANGUAGES, catalogue_path, read_po

PACKAGE_DIR = Path(__file__).resolve().parent
MARKERS = {"_": 1, "N_": 1, "ngettext": 2}


@dataclass
class Message:
    """One string to translate, with where the code uses it."""

    msgid: str
    plural: str | None = None
    where: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.msgid if self.plural is None else self.msgid + "\0" + self.plural


class ExtractError(Exception):
    """A marker called with something other than string literals: the catalogue could not hold it."""


def _literal(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def extract(root: Path = PACKAGE_DIR) -> tuple[list[Message], list[str]]:
    """Every marked string under `root`, in source order (first use first), and the problems found
    (a marker given an f-string, a variable, a concatenation at run time...)."""
    found: dict[str, Message] = {}
    problems: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        problems += _shadowed_marker(tree, rel)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            count = MARKERS.get(node.func.id)
            if count is None:
                continue
            texts = [_literal(arg) for arg in node.args[:count]]
            if len(node.args) < count or any(t is None for t in texts):
                # `_(SENTENCES[x])` translates a constant marked with N_() where it is defined: fine.
                # A string built here (f-string, %, +, .format()) can never be in the catalogue.
                built = (ast.JoinedStr, ast.BinOp, ast.Call)
                if len(node.args) < count or any(isinstance(arg, built) for arg in node.args[:count]):
                    problems.append(f"{rel}:{node.lineno}: {node.func.id}() of a string built at run time")
                continue
            msgid = texts[0] or ""
            plural = texts[1] if count == 2 else None
            message = Message(msgid, plural)
            message = found.setdefault(message.key, message)
            message.where.append(f"{rel}:{node.lineno}")
    ordered = sorted(found.values(), key=lambda m: _order(m.where[0]))
    return ordered, problems


def _shadowed_marker(tree: ast.Module, rel: str) -> list[str]:
    """A module that imports `_` and also assigns it (`name, _, rest = ...`) would call a string:
    each such assignment is a problem."""
    imports_marker = any(
        isinstance(node, ast.ImportFrom) and any(alias.name == "_" for alias in node.names)
        for node in tree.body
    )
    if not imports_marker:
        return []
    return [
        f"{rel}:{node.lineno}: assigns `_`, the translation function here (name it `_sep`, `_unused`...)"
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store)
    ]


def _order(where: str) -> tuple[str, int]:
    path, _sep, line = where.rpartition(":")
    return path, int(line)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    lines = escaped.split("\n")
    if len(lines) == 1:
        return f'"{escaped}"'
    parts = [line + "\\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    return '""\n' + "\n".join(f'"{part}"' for part in parts)


HEADER = {
    "id": (
        "Project-Id-Version: labchat\\n"
        "Language: id\\n"
        "MIME-Version: 1.0\\n"
        "Content-Type: text/plain; charset=UTF-8\\n"
        "Content-Transfer-Encoding: 8bit\\n"
        "Plural-Forms: nplurals=1; plural=0;\\n"
    ),
}
NPLURALS = {"id": 1}


def render(lang: str, messages: list[Message], old: dict[str, list[str]]) -> str:
    """The `.po` text for `lang` holding `messages`, with the translations in `old` kept."""
    out = [
        f"# labchat: {LANGUAGES[lang]}. Updated by `python -m labchat.i18n_catalog`; "
        "translate the empty msgstr.",
        'msgid ""',
        'msgstr ""',
        *(f'"{line}\\n"' for line in HEADER[lang].split("\\n") if line),
        "",
    ]
    for message in messages:
        out.extend(f"#: {where}" for where in message.where[:3])
        forms = old.get(message.key, [])
        out.append("msgid " + _quote(message.msgid))
        if message.plural is None:
            out.append("msgstr " + _quote(forms[0] if forms else ""))
        else:
            out.append("msgid_plural " + _quote(message.plural))
            for i in range(NPLURALS[lang]):
                out.append(f"msgstr[{i}] " + _quote(forms[i] if i < len(forms) else ""))
        out.append("")
    return "\n".join(out)


def missing(lang: str, messages: list[Message]) -> list[Message]:
    """The strings `lang`'s catalogue does not translate."""
    have = read_po(catalogue_path(lang))
    return [m for m in messages if not any(have.get(m.key, []))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m labchat.i18n_catalog", description=__doc__)
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a translation is missing")
    args = p.parse_args(argv)
    messages, problems = extract()
    for problem in problems:
        print(problem, file=sys.stderr)
    status = 1 if problems else 0
    for lang in LANGUAGES:
        if lang == "en":
            continue  # the source strings are the English
        path = catalogue_path(lang)
        if args.check:
            for m in missing(lang, messages):
                print(f"{lang}: untranslated: {m.msgid!r} ({m.where[0]})", file=sys.stderr)
                status = 1
            continue
        old = read_po(path) if path.exists() else {}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(lang, messages, old), encoding="utf-8")
        print(f"{path}: {len(messages)} strings, {len(missing(lang, messages))} to translate")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
