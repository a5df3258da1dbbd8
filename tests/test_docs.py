"""The user guide and the README as a reader meets them: every picture they show is there, and every
link to a section (`#running-a-class`, `docs/user-guide.md#files`) lands on a heading or an anchor."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "docs/user-guide.md", "docs/cluster.md")

_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)#\s]+)\)")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]*)\)")
_HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)
_ANCHOR = re.compile(r'<a id="([^"]+)"></a>')
_FENCE = re.compile(r"^(`{3,})[^\n]*\n.*?^\1\s*$", re.MULTILINE | re.DOTALL)


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def prose(path: Path) -> str:
    """The file without its fenced blocks (a `# comment` in a shell example is no heading)."""
    return _FENCE.sub("", path.read_text(encoding="utf-8"))


def anchors(path: Path) -> set[str]:
    text = prose(path)
    return {slug(h) for h in _HEADING.findall(text)} | set(_ANCHOR.findall(text))


@pytest.mark.parametrize("doc", DOCS)
def test_every_picture_is_there(doc: str) -> None:
    path = ROOT / doc
    missing = [src for src in _IMAGE.findall(prose(path)) if not (path.parent / src).is_file()]
    assert missing == []


@pytest.mark.parametrize("doc", DOCS)
def test_every_link_to_a_section_lands(doc: str) -> None:
    path = ROOT / doc
    broken = []
    for target in _LINK.findall(prose(path)):
        if "://" in target or "#" not in target:
            continue
        file, _, fragment = target.partition("#")
        other = (path.parent / file) if file else path
        if other.suffix == ".md" and fragment not in anchors(other):
            broken.append(target)
    assert broken == []


def test_slugs() -> None:
    assert slug("Running a class") == "running-a-class"
    assert slug("When the server's key has changed") == "when-the-servers-key-has-changed"
    assert slug("Reading, finding your place and copying") == "reading-finding-your-place-and-copying"
    assert slug("Away, notifications, the palette and themes") == "away-notifications-the-palette-and-themes"
