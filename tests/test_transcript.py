"""labchat/transcript.py: a room's transcript as Markdown and HTML, from plain data (20.6)."""

from __future__ import annotations

from datetime import UTC
from html.parser import HTMLParser

from hypothesis import given
from hypothesis import strategies as st

from labchat.transcript import Hand, Offered, PollResult, Said, Transcript, to_html, to_markdown

T0 = 1_764_583_200_000  # 2025-12-01 10:00:00 UTC
UTC = UTC


def sample() -> Transcript:
    return Transcript(
        "cs101", T0, T0 + 3_600_000, "Lab 3",
        messages=(
            Said(T0 + 1000, "teacher", "welcome <b>all</b> & hi"),
            Said(T0 + 5000, "budi", "my code:\n```python\nif a < b:\n    print('<x>')\n```\nwhy?"),
            Said(T0 + 6000, "cid", "waves", action=True),
            Said(T0 + 7000, "dewi", "is 3b due today?", to_ops=True),
        ),
        files=(Offered(T0 + 3000, "teacher", "lab3.pdf", 250_000),),
        polls=(
            PollResult(T0 + 4000, "teacher", "Done with exercise 2?", ("yes", "no", "stuck"), (20, 3, 1), 24),
        ),
        hands=(
            Hand("budi", "PC-14", "segfault in exercise 2", T0 + 2000, "teacher", T0 + 2500, T0 + 9000,
                 "teacher"),
            Hand("cid", "PC-2", "", T0 + 8000),
        ),
    )  # fmt: skip


def test_markdown_keeps_code_blocks_escapes_html_and_lists_everything() -> None:
    md = to_markdown(sample(), UTC)
    assert md.startswith("# #cs101 — transcript\n\n2025-12-01 10:00 to 2025-12-01 11:00\n\nTopic: Lab 3\n")
    assert "**10:00:01** &lt;teacher&gt; welcome &lt;b&gt;all&lt;/b&gt; &amp; hi" in md
    assert "```\nif a < b:\n    print('<x>')\n```" in md  # code stays code, unescaped
    assert "**10:00:06** * cid waves" in md
    assert "&lt;dewi&gt; (to the operators) is 3b due today?" in md
    assert "teacher offered the file `lab3.pdf` (244.1 KB)" in md
    assert "poll by teacher: Done with exercise 2? — yes 20, no 3, stuck 1 (24 voted)" in md
    assert md.index("welcome") < md.index("lab3.pdf") < md.index("Done with") < md.index("my code")
    assert "| 10:00:02 | budi | PC-14 | segfault in exercise 2 | teacher at 10:00:02 | 10:00:09 |" in md
    assert "| 10:00:08 | cid | PC-2 |  |  | still waiting |" in md


def test_html_escapes_everything_and_renders_code_as_pre() -> None:
    page = to_html(sample(), UTC)
    assert "<b>all</b>" not in page and "welcome &lt;b&gt;all&lt;/b&gt; &amp; hi" in page
    assert "<pre><code>if a &lt; b:\n    print(&#x27;&lt;x&gt;&#x27;)</code></pre>" in page
    assert "<script" not in page and "<td>segfault in exercise 2</td>" in page
    assert "yes: 20" in page and "24 voted" in page


def test_empty_transcript_and_unknown_results() -> None:
    t = Transcript("art", T0, T0, polls=(PollResult(T0, "t", "Q?", ("a", "b"), closed=False),))
    assert "results not known" in to_markdown(t, UTC) and "results not known" in to_html(t, UTC)
    assert "(no messages)" in to_markdown(Transcript("art", T0, T0), UTC)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)


@given(st.text(max_size=200), st.text(min_size=1, max_size=20))
def test_no_user_text_becomes_markup(text: str, user: str) -> None:
    page = to_html(Transcript("cs101", T0, T0, text, messages=(Said(T0, user, text),)), UTC)
    parser = _Tags()
    parser.feed(page)
    assert parser.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "div", "span",
                           "br", "pre", "code"}  # fmt: skip
