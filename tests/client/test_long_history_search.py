"""Long messages, history pages and search between real clients and a real server over UDP on
127.0.0.1 (docs/protocol.md section 15), driven through typed lines as a user types them."""

from __future__ import annotations

from pathlib import Path

from labchat.protocol import events as ev
from labchat.protocol.client import ClientConfig
from labchat.server.transport import RelayServer

from ..helpers import connect

PASTE = "\n".join(f"{i:04d} a pasted log line with some words in it, and ünïcödé" for i in range(260))


async def test_long_message_history_page_and_search(server: RelayServer, tmp_path: Path) -> None:
    assert 16_000 < len(PASTE.encode()) <= 16384
    alice = await connect(server, "alice", tmp_path=tmp_path)
    bob = await connect(server, "bob", tmp_path=tmp_path)
    old = await connect(server, "olga", tmp_path=tmp_path, config=ClientConfig(capabilities=0))
    for i in range(1, 61):
        alice.client.submit(f"short {i}")
    alice.client.submit(PASTE)
    delivered = await alice.wait_for(ev.MessageDelivered, lambda e: e.text == PASTE)
    got = await bob.wait_for(ev.MessageReceived, lambda e: e.seq == delivered.seq)
    assert got.text == PASTE and got.user == "alice"
    preview = await old.wait_for(ev.MessageReceived, lambda e: e.seq == delivered.seq)
    assert preview.text.endswith("more bytes: update labchat to read it]")

    # A newcomer sees the last 50, then pages back with /history.
    carol = await connect(server, "carol", tmp_path=tmp_path)
    await carol.wait_for(ev.MessageReceived, lambda e: e.seq == delivered.seq)
    assert carol.client.conn.oldest_seq == 12
    assert carol.client.submit("/history").local_lines == ()
    page = await carol.wait_for(ev.HistoryPage)
    assert [e.text for e in page.messages] == [f"short {i}" for i in range(1, 12)] and not page.more

    assert bob.client.submit("/search  pasted   LINE 0042").local_lines == ()
    results = await bob.wait_for(ev.SearchResults)
    assert [h.seq for h in results.hits] == [delivered.seq]
    assert "0042" in results.hits[0].snippet and results.query == "pasted   LINE 0042"
    assert bob.client.submit("/search").error
    for c in (alice, bob, carol, old):
        await c.close()
