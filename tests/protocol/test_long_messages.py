"""Long messages, history pages and search (docs/protocol.md section 15), on the simulated network
with a fake clock: the real relay and SQLite store, real client connections."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.errors import DecodeError, ErrorCode, LocalProtocolError, RemoteProtocolError
from labchat.protocol.parts import Reassembler
from labchat.protocol.text import long_preview, split_parts, utf8_len
from labchat.protocol.wire import MAX_FRAME_BODY_BYTES, decode_message, encode_message

from .sim import PathModel, SimNet, fast_config

#: 16384 bytes exactly, with newlines and multi-byte characters across part boundaries.
LONG = ("Traceback (most recent call last):\n  File \"x.py\", line 1 — é€🙂\n" * 300).encode()[:16380].decode(
    "utf-8", "ignore"
)
LONG = LONG + "x" * (16384 - utf8_len(LONG))


def test_long_text_is_exactly_16_kb() -> None:
    assert utf8_len(LONG) == m.MAX_LONG_TEXT_BYTES and "\n" in LONG


# ---------------------------------------------------------------- parts, without the network


@given(st.text(min_size=1, max_size=6000))
def test_split_parts_rejoins_exactly_and_each_part_fits(text: str) -> None:
    parts = split_parts(text)
    assert "".join(parts) == text
    assert all(0 < utf8_len(p) <= m.MAX_TEXT_BYTES for p in parts)


@given(st.text(min_size=0, max_size=20000))
def test_long_preview_fits_one_message(text: str) -> None:
    preview = long_preview(text)
    assert utf8_len(preview) <= m.MAX_TEXT_BYTES
    if utf8_len(text) > m.MAX_TEXT_BYTES:
        head, _, tail = preview.rpartition(" … [")
        assert text.startswith(head)
        assert tail == f"{utf8_len(text) - utf8_len(head)} more bytes: update labchat to read it]"


def test_largest_part_frames_fit_a_frame() -> None:
    biggest = m.HistoryEntry(2**32 - 1, "r" * 32, 2**64 - 1, 2**64 - 1, "u" * 20, 255, 2**64 - 1,
                             m.MAX_PARTS - 1, m.MAX_PARTS, "€" * 300)  # fmt: skip
    assert len(encode_message(biggest)) <= MAX_FRAME_BODY_BYTES
    say = m.SayPart(2**64 - 1, "r" * 32, "u" * 20, 1, 0, m.MAX_PARTS, "€" * 300)
    assert len(encode_message(say)) <= MAX_FRAME_BODY_BYTES


def test_reassembler_in_order_and_out_of_order() -> None:
    r = Reassembler()
    assert r.feed(1, 0, 3, "a") is None and r.busy
    assert r.feed(1, 1, 3, "b") is None
    assert r.feed(1, 2, 3, "c") == "abc" and not r.busy
    r.feed(2, 0, 3, "a")
    with pytest.raises(RemoteProtocolError) as info:
        r.feed(2, 2, 3, "c")  # a part skipped
    assert info.value.code == ErrorCode.BAD_PARTS and not r.busy
    with pytest.raises(RemoteProtocolError):
        r.feed(3, 1, 3, "b")  # nothing under way


def test_reassembler_refuses_too_long_once_then_swallows_the_rest() -> None:
    r = Reassembler(limit=10)
    r.feed(1, 0, 4, "12345")
    with pytest.raises(RemoteProtocolError) as info:
        r.feed(1, 1, 4, "678901")
    assert info.value.code == ErrorCode.TOO_LONG
    assert r.feed(1, 2, 4, "x") is None
    assert r.feed(1, 3, 4, "y") is None and not r.busy


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 70), st.integers(1, 70), st.text(max_size=900))))
def test_reassembler_never_holds_more_than_its_limit(feeds: list[tuple[int, int, int, str]]) -> None:
    """Whatever a peer sends, the reassembler holds at most one message within its limit, and fails
    only with RemoteProtocolError."""
    r = Reassembler(limit=2000)
    for key, index, count, text in feeds:
        try:
            out = r.feed(key, index, count, text)
        except RemoteProtocolError:
            continue
        if out is not None:
            assert utf8_len(out) <= 2000
        held = r._partial
        assert held is None or held.size <= 2000


@given(st.binary(max_size=1100))
def test_part_decoders_are_total(body: bytes) -> None:
    for kind in (m.Kind.SAY_PART, m.Kind.MESSAGE_PART, m.Kind.PRIVATE_PART, m.Kind.HISTORY_ENTRY,
                 m.Kind.HISTORY, m.Kind.SEARCH, m.Kind.SEARCH_HIT, m.Kind.REQUEST_DONE):  # fmt: skip
        with contextlib.suppress(DecodeError):  # anything else fails the test
            decode_message(kind, body)


def test_login_without_the_appended_flags_decodes_as_flags_0() -> None:
    # version 1: the four first fields (three STRs and a U64), none of the appended ones
    required = sum(2 + len(text) for text in ("alice", "pw", "lobby")) + 8
    old = encode_message(m.Login("alice", "pw", "lobby", 7))[:required]
    assert decode_message(m.Kind.LOGIN, old) == m.Login("alice", "pw", "lobby", 7, 0)
    old_ok = encode_message(m.LoginOk("alice", "lobby"))[:-4]
    assert decode_message(m.Kind.LOGIN_OK, old_ok).flags == 0  # type: ignore[attr-defined]


# ---------------------------------------------------------------- over the simulated network


def _received(client) -> list[ev.MessageReceived]:  # type: ignore[no-untyped-def]
    return client.of(ev.MessageReceived)


@pytest.mark.parametrize("seed", [1, 2])
def test_16_kb_message_through_20_percent_loss_arrives_once_whole(tmp_path: Path, seed: int) -> None:
    net = SimNet(tmp_path, seed=seed, path=PathModel(loss=0.2, duplicate=0.05, reorder=0.1))
    a, b = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"))
    ids = a.conn.say(LONG, net.now)
    assert len(ids) == 1
    a.conn.say("after", net.now)
    net.run_until(lambda: len(_received(b)) == 2 and a.conn.pending == 0, limit_s=120)
    long_msg, after = _received(b)
    assert long_msg.text == LONG and long_msg.user == "ana"
    assert after.text == "after" and after.seq == long_msg.seq + 1
    delivered = [e for e in a.of(ev.MessageDelivered) if e.local_id == ids[0]]
    assert len(delivered) == 1 and delivered[0].seq == long_msg.seq and delivered[0].text == LONG
    assert len(a.of(ev.MessageQueued)) == 2  # one line for the long message, not 19
    assert net.relay is not None  # the database holds the whole text, in one row
    assert [s.text for s in net.relay.store.last_messages("lobby", 5)] == [LONG, "after"]


def test_old_client_gets_a_preview_with_the_same_seq(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    a = net.add_client("ana")
    old = net.add_client("lama", config=fast_config(capabilities=0))
    net.run_until(lambda: net.logged_in("ana", "lama"))
    a.conn.say(LONG, net.now)
    net.run_until(lambda: bool(_received(old)) and a.conn.pending == 0)
    (got,) = _received(old)
    assert utf8_len(got.text) <= m.MAX_TEXT_BYTES
    assert got.text.endswith("more bytes: update labchat to read it]")
    assert got.seq == a.of(ev.MessageDelivered)[0].seq
    # A newcomer that reads long messages gets the whole text from history; an old one the preview.
    late = net.add_client("citra")
    late_old = net.add_client("dodi", config=fast_config(capabilities=0))
    net.run_until(lambda: bool(_received(late)) and bool(_received(late_old)))
    assert _received(late)[0].text == LONG and _received(late)[0].history
    assert _received(late_old)[0].text == got.text


def test_long_private_message_whole_or_preview(tmp_path: Path) -> None:
    net = SimNet(tmp_path, path=PathModel(loss=0.1))
    a, b = net.add_client("ana"), net.add_client("budi")
    old = net.add_client("lama", config=fast_config(capabilities=0))
    net.run_until(lambda: net.logged_in("ana", "budi", "lama"))
    a.conn.whisper("budi", LONG, net.now, action=True)
    a.conn.whisper("lama", LONG, net.now)
    net.run_until(lambda: bool(b.of(ev.PrivateReceived)) and bool(old.of(ev.PrivateReceived)))
    net.run_until(lambda: a.conn.pending == 0)
    (whole,) = b.of(ev.PrivateReceived)
    assert whole.text == LONG and whole.action and whole.sender == "ana"
    (preview,) = old.of(ev.PrivateReceived)
    assert preview.text.endswith("update labchat to read it]")
    assert len([e for e in a.of(ev.MessageDelivered) if e.to]) == 2


def test_long_message_cut_by_a_server_crash_is_resent_whole_and_shown_once(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    a, b = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"))
    a.conn.say(LONG, net.now)
    net.step()  # some parts reach the server, not all
    net.crash_relay()
    net.run_for(2.0)
    net.start_relay()
    net.run_until(lambda: bool(_received(b)) and a.conn.pending == 0, limit_s=60)
    net.run_for(2.0)
    assert [e.text for e in _received(b)] == [LONG]


def test_over_16_kb_is_refused_locally_with_a_clear_text(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    a = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    with pytest.raises(LocalProtocolError, match=r"message too long: 20\.0 KB, the limit is 16 KB"):
        a.conn.say("x" * 20480, net.now)


def test_server_log_shows_a_long_message_cut(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    net = SimNet(tmp_path)
    a, b = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"))
    with caplog.at_level(logging.INFO, logger="labchat.server.relay"):
        a.conn.say("y" * 10000, net.now)
        net.run_until(lambda: bool(_received(b)))
    (line,) = [r.getMessage() for r in caplog.records if "<ana>" in r.getMessage()]
    assert "… (10000 chars)" in line and len(line) < 300


def test_long_messages_are_rate_limited_by_size(tmp_path: Path) -> None:
    from labchat.server.relay import RelayConfig

    net = SimNet(tmp_path, relay_config=RelayConfig(rate_per_s=10, rate_burst=40))
    a, b = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"))
    start = net.now
    for _ in range(6):
        a.conn.say(LONG, net.now)  # 19 tokens each: 114 in all, 40 at once, then 10 per second
    net.run_until(lambda: len(_received(b)) == 6, limit_s=60)
    assert net.now - start >= (6 * 19 - 40) / 10 - 1
    assert a.of(ev.ServerNotice)  # told to slow down


# ---------------------------------------------------------------- history pages


def _chat(net: SimNet, client, count: int) -> None:  # type: ignore[no-untyped-def]
    for i in range(count):
        client.conn.say(f"line {i + 1}", net.now)
    net.run_until(lambda: client.conn.pending == 0, limit_s=120)


def test_history_pages_back_to_the_first_message(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    a = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    _chat(net, a, 230)
    a.conn.say(LONG, net.now)
    net.run_until(lambda: a.conn.pending == 0)
    late = net.add_client("budi")
    net.run_until(lambda: len(_received(late)) == 50)  # history on join: the last 50
    assert late.conn.oldest_seq == 182
    last_seq = late.conn.last_seq
    pages: list[ev.HistoryPage] = []
    before = late.conn.oldest_seq
    while True:
        late.conn.fetch_history(before, net.now)
        net.run_until(lambda: len(late.of(ev.HistoryPage)) == len(pages) + 1)
        page = late.of(ev.HistoryPage)[-1]
        pages.append(page)
        if not page.more:
            break
        before = page.messages[0].seq
    assert [len(p.messages) for p in pages] == [100, 81]
    seqs = [e.seq for p in reversed(pages) for e in p.messages]
    assert seqs == list(range(1, 182))
    assert pages[-1].messages[0].text == "line 1" and all(e.history for p in pages for e in p.messages)
    assert late.conn.last_seq == last_seq  # pages are not part of the live stream
    assert late.conn.oldest_seq == 1
    # The newest page (before_seq 0) carries the long message whole, and the live log is untouched.
    late.conn.fetch_history(0, net.now, limit=2)
    net.run_until(lambda: len(late.of(ev.HistoryPage)) == 3)
    newest = late.of(ev.HistoryPage)[-1]
    assert [e.text for e in newest.messages] == ["line 230", LONG]
    assert newest.more and newest.before_seq == 0


def test_history_request_lost_to_a_crash_is_asked_again(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    a = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    _chat(net, a, 5)
    net.crash_relay()
    a.conn.fetch_history(0, net.now)
    net.run_for(3.0)
    net.start_relay()
    net.run_until(lambda: bool(a.of(ev.HistoryPage)), limit_s=60)
    (page,) = a.of(ev.HistoryPage)
    assert [e.text for e in page.messages] == [f"line {i}" for i in range(1, 6)] and not page.more


# ---------------------------------------------------------------- search


def test_search_newest_first_with_literal_words(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    a = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    for text in ["the build is red", "lunch?", "build fixed, AND green", 'quote " star * NEAR(x)',
                 "BUILD again"]:  # fmt: skip
        a.conn.say(text, net.now)
    a.conn.say("deep in a long one: needle " + "z" * 2000, net.now, action=True)
    net.run_until(lambda: a.conn.pending == 0)

    def search(query: str) -> ev.SearchResults:
        a.conn.search(query, net.now)
        count = len(a.of(ev.SearchResults))
        net.run_until(lambda: len(a.of(ev.SearchResults)) > count)
        return a.of(ev.SearchResults)[-1]

    build = search("build")
    assert [h.snippet for h in build.hits] == ["BUILD again", "build fixed, AND green", "the build is red"]
    assert [h.seq for h in build.hits] == [5, 3, 1] and build.hits[0].user == "ana" and not build.more
    assert [h.seq for h in search("Build red").hits] == [1]
    for hostile in ['"', "*", "AND", "NEAR(x", "build OR lunch", "a:b", "-build", "^", "((("]:
        result = search(hostile)
        assert not result.error, hostile
    assert [h.seq for h in search("AND").hits] == [3]
    assert [h.seq for h in search("NEAR(x").hits] == [4]
    needle = search("needle")
    assert needle.hits[0].action and utf8_len(needle.hits[0].snippet) <= m.MAX_SNIPPET_BYTES
    assert search("nothing-like-this").hits == ()
    with pytest.raises(LocalProtocolError, match="usage: /search"):
        a.conn.search("   ", net.now)


def test_search_caps_at_50_hits_and_says_more(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    a = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana"))
    _chat(net, a, 60)
    a.conn.search("line", net.now)
    net.run_until(lambda: bool(a.of(ev.SearchResults)))
    (result,) = a.of(ev.SearchResults)
    assert len(result.hits) == 50 and result.more
    assert result.hits[0].seq == 60 and result.hits[-1].seq == 11


def test_message_text_keeps_its_lines_but_no_other_control() -> None:
    from labchat.protocol.text import neutralize_text

    assert neutralize_text("a\r\nb\n\tc\x1b[2J") == "a\nb\n    c^[[2J"
    assert neutralize_text("plain") == "plain"


def test_against_an_older_server_long_input_is_split_and_search_is_refused(tmp_path: Path) -> None:
    from labchat.server.relay import RelayConfig

    net = SimNet(tmp_path, relay_config=RelayConfig(capabilities=0))
    a, b = net.add_client("ana"), net.add_client("budi")
    early = a.conn.search("anything", net.now)  # asked before the login: answered after it
    queued = a.conn.say("w " * 1000, net.now)  # 2000 bytes, queued before we know the server
    net.run_until(lambda: net.logged_in("ana", "budi"))
    (failed,) = a.of(ev.SearchResults)
    assert early and failed.error and "older labchat" in failed.error
    net.run_until(lambda: a.conn.pending == 0)
    net.run_until(lambda: len(_received(b)) == 3)
    assert [utf8_len(e.text) for e in _received(b)] == [899, 899, 200]
    assert queued[0] == a.of(ev.MessageDelivered)[0].local_id  # the queued line is the first piece
    assert len(a.conn.say("v " * 1000, net.now)) == 3  # known old server: split at once, as before
    with pytest.raises(LocalProtocolError, match="older labchat"):
        a.conn.fetch_history(0, net.now)


def test_long_messages_reach_a_stalled_client_by_catch_up_and_resume(tmp_path: Path) -> None:
    from labchat.server.relay import RelayConfig

    cfg = RelayConfig(max_backlog_frames=64, rate_per_s=10_000, rate_burst=10_000)
    net = SimNet(tmp_path, relay_config=cfg)
    a, b = net.add_client("ana"), net.add_client("budi")
    old = net.add_client("lama", config=fast_config(capabilities=0))
    net.run_until(lambda: net.logged_in("ana", "budi", "lama"))
    b.deaf = True  # budi's link stops acknowledging: the server's backlog for him grows
    texts = [f"{i}: " + LONG[: 5000 + 100 * i] for i in range(12)]  # 6-7 parts each, ~80 frames
    for text in texts:
        a.conn.say(text, net.now)
    net.run_until(lambda: a.conn.pending == 0 and len(_received(old)) == 12, limit_s=60)
    net.run_for(1.0)
    b.deaf = False
    net.run_until(lambda: len(_received(b)) == 12, limit_s=120)
    assert [e.text for e in _received(b)] == texts
    assert all(e.text.endswith("update labchat to read it]") for e in _received(old))


def test_long_private_message_held_for_an_offline_user_arrives_whole(tmp_path: Path) -> None:
    net = SimNet(tmp_path, path=PathModel(loss=0.1))
    first = net.add_client("budi")
    net.run_until(lambda: net.logged_in("budi"))
    first.conn.quit(net.now)  # budi has an account, and leaves
    a = net.add_client("ana")
    net.run_until(lambda: net.logged_in("ana") and first.conn.state is ev.ConnectionState.CLOSED)
    a.conn.whisper("budi", LONG, net.now)
    net.run_until(lambda: a.conn.pending == 0)
    back = net.add_client("budi")
    net.run_until(lambda: bool(back.of(ev.PrivateReceived)), limit_s=60)
    (got,) = back.of(ev.PrivateReceived)
    assert got.text == LONG and got.sender == "ana"
    net.run_for(2.0)  # acknowledged: the row is gone, nothing comes twice on the next login
    assert net.relay is not None and net.relay.store.held_count("budi") == 0
