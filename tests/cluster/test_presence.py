"""Two relays on one real NATS cluster: one set of people (presence, sessions, accounts, privates).

Each relay is a real server (UDP on 127.0.0.1, its own SQLite) with its ClusterPeople; the clients
are real ChatClients. Every wait is bounded and waits for an event.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from labchat.client.core import ChatClient
from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from labchat.protocol.channel import ServerChannel
from labchat.protocol.errors import ErrorCode
from labchat.server import admin
from labchat.server.backplane import ClusterBackplane
from labchat.server.cluster.bridge import ClusterBridge
from labchat.server.cluster.connection import ClusterConnection
from labchat.server.cluster.people import ClusterPeople
from labchat.server.keys import load_or_create_server_key, public_key_of
from labchat.server.relay import Relay, RelayConfig
from labchat.server.store import Store
from labchat.server.tickets import TicketBook, derive_ticket_key
from labchat.server.transport import RelayServer, serve
from tests.helpers import TEST_SCRYPT_N, ClientUnderTest, connect
from tests.nats_cluster import NatsCluster


@dataclass
class ClusterRelay:
    server: RelayServer
    conn: ClusterConnection
    bridge: ClusterBridge
    people: ClusterPeople

    async def close(self) -> None:
        await self.bridge.close()  # the people leave the cluster first (bridge.on_close)
        await self.server.stop(grace_s=0)
        await self.conn.close()


async def start_relay(
    base: Path, cluster: NatsCluster, name: str, ttl_s: float | None = None, **overrides: object
) -> ClusterRelay:
    """One relay as `labchat-server --cluster` makes it (cli.py): its own SQLite replica, the
    cluster's shared key and ticket key, the room bridge, and the people on the same connection."""
    home = base / name
    home.mkdir(parents=True)
    key = load_or_create_server_key(base / "cluster.key")  # one key file, as copied to each relay
    store = Store(home / "relay.db", scrypt_n=TEST_SCRYPT_N)
    config = replace(RelayConfig(), **overrides)  # type: ignore[arg-type]
    tickets = TicketBook(derive_ticket_key(key), public_key_of(key))
    relay = Relay(store, ServerChannel(key), config, tickets, ClusterBackplane())
    server = await serve("127.0.0.1", 0, relay)
    conn = await ClusterConnection.connect(cluster.urls)
    bridge = await ClusterBridge.start(server, conn)
    people = await ClusterPeople.start(
        conn, relay, flush=server.protocol.schedule_flush, clock=server.protocol.clock, ttl_s=ttl_s
    )
    bridge.on_close(people.close)
    return ClusterRelay(server, conn, bridge, people)


@pytest.fixture
async def two_relays(
    tmp_path: Path, nats_cluster: NatsCluster
) -> AsyncIterator[tuple[ClusterRelay, ClusterRelay]]:
    a = await start_relay(tmp_path, nats_cluster, "a")
    b = await start_relay(tmp_path, nats_cluster, "b")
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def lists(room: str, *names: str) -> object:
    want = set(names)
    return lambda e: e.room == room and set(e.users) == want


async def test_people_on_the_other_relay_are_listed_and_come_and_go(
    two_relays: tuple[ClusterRelay, ClusterRelay], tmp_path: Path
) -> None:
    a, b = two_relays
    alice = await connect(a.server, "alice", tmp_path=tmp_path)
    bob = await connect(b.server, "bob", tmp_path=tmp_path)
    try:
        joined = await alice.wait_for(ev.UserJoined, lambda e: e.user == "bob")
        assert joined.seat == bob.client.seat  # his seat came with the presence entry (20.2)
        alice.client.submit("/who")
        await alice.wait_for(ev.PresenceUpdated, lambda e: e.requested and set(e.users) == {"alice", "bob"})
        # bob logged in after alice: relay B lists her from the bucket, in his PRESENCE at login or,
        # when B's watch had not yet delivered her entry then, as a JOINED just after (the bucket is
        # read asynchronously; either way bob learns of her without asking)
        await bob.wait_until(
            lambda: any("alice" in e.users for e in bob.of(ev.PresenceUpdated))
            or any(e.user == "alice" for e in bob.of(ev.UserJoined))
        )
        bob.client.submit("/who")
        listed = await bob.wait_for(
            ev.PresenceUpdated, lambda e: e.requested and set(e.users) == {"alice", "bob"}
        )
        assert listed.seats.get("alice") == alice.client.seat  # her seat came through the bucket
        # the room itself is shared too (the bridge): one line each way
        alice.client.submit("hello from relay A")
        await bob.wait_for(ev.MessageReceived, lambda e: e.text == "hello from relay A")
        bob.client.set_away("lunch")
        await alice.wait_for(ev.UserAway, lambda e: e.user == "bob" and e.away and e.reason == "lunch")
        await bob.close()
        left = await alice.wait_for(ev.UserLeft, lambda e: e.user == "bob")
        assert left.reason == "quit"
        assert [e.user for e in alice.of(ev.UserJoined)].count("bob") == 1  # once each
        alice.client.submit("/who")
        await alice.wait_for(ev.PresenceUpdated, lambda e: e.requested and e.users == ("alice",))
    finally:
        await alice.close()


async def test_a_second_login_on_another_relay_ends_the_first_with_replaced(
    two_relays: tuple[ClusterRelay, ClusterRelay], tmp_path: Path
) -> None:
    a, b = two_relays
    alice = await connect(a.server, "alice", tmp_path=tmp_path)
    bob_b = await connect(b.server, "bob", tmp_path=tmp_path)
    try:
        await alice.wait_for(ev.UserJoined, lambda e: e.user == "bob")
        bob_a = await connect(a.server, "bob", tmp_path=tmp_path / "second")
        closed = await bob_b.wait_for(ev.Closed)
        assert closed.code == ErrorCode.REPLACED
        assert b.people.claims.replaced == 1
        # bob moved from B to A: alice saw him join once and never leave
        alice.client.submit("/who")
        await alice.wait_for(ev.PresenceUpdated, lambda e: e.requested and set(e.users) == {"alice", "bob"})
        assert not [e for e in alice.of(ev.UserLeft) if e.user == "bob"]
        assert [e.user for e in alice.of(ev.UserJoined)].count("bob") == 1
        assert "bob" not in b.server.relay.online_by_key
        await bob_a.close()
    finally:
        await alice.close()
        await bob_b.close()


async def test_an_account_made_on_one_relay_logs_in_on_the_other(
    two_relays: tuple[ClusterRelay, ClusterRelay], tmp_path: Path
) -> None:
    a, b = two_relays
    carol = await connect(a.server, "carol", "carol-secret", tmp_path=tmp_path)
    assert (await carol.wait_for(ev.LoggedIn)).registered
    await carol.close()
    # whether or not B's copy has her account yet (a login there reads the bucket if not, 22.4)
    again = await connect(b.server, "carol", "carol-secret", tmp_path=tmp_path / "b")
    assert not (await again.wait_for(ev.LoggedIn)).registered
    await again.close()
    wrong = await connect(b.server, "carol", "not-her-password", tmp_path=tmp_path / "c", login=False)
    refused = await wrong.wait_for(ev.LoginRefused)
    assert refused.code == ErrorCode.INVALID_PASSWORD
    await wrong.close()


async def test_a_login_on_a_relay_whose_copy_of_the_account_is_late_is_checked_against_the_bucket(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    """Relay B (registration closed there) has not copied carol's new account yet: its watch is
    stopped here, as if late. Her logins there read the bucket first, so they are what they would be
    with the copy: the right password logs in, as the app's login (no registering) or a plain one,
    and a wrong one is refused; never "registration is closed" or "no such account"."""
    a = await start_relay(tmp_path, nats_cluster, "a")
    b = await start_relay(tmp_path, nats_cluster, "b", registration_open=False)
    try:
        await b.people.accounts.close()  # B's copy of the bucket stops here
        carol = await connect(a.server, "carol", "carol-secret", tmp_path=tmp_path)
        assert (await carol.wait_for(ev.LoggedIn)).registered
        await carol.close()
        assert b.server.relay.store.get_account("carol") is None
        wrong = await connect(b.server, "carol", "not-her-password", tmp_path=tmp_path / "w", login=False)
        assert (await wrong.wait_for(ev.LoginRefused)).code == ErrorCode.INVALID_PASSWORD
        await wrong.close()
        host, port = b.server.address
        app_login = ChatClient(
            host, port, "carol", "carol-secret", known_servers=KnownServers(tmp_path / "known-app"),
            register=False,
        )  # fmt: skip
        again = await ClientUnderTest(app_login).start()
        logged = await again.wait_for(ev.LoggedIn, timeout=15)
        assert not logged.registered and logged.user == "carol"
        await again.close()
        assert b.server.relay.store.get_account("carol") is not None  # copied on the way
        # a name nobody has is still refused as B refuses new names
        dave = await connect(b.server, "dave", "dave-secret", tmp_path=tmp_path / "d", login=False)
        assert (await dave.wait_for(ev.LoginRefused)).code == ErrorCode.REGISTRATION_CLOSED
        await dave.close()
    finally:
        await a.close()
        await b.close()


async def test_two_relays_registering_one_name_at_once_make_one_account(
    two_relays: tuple[ClusterRelay, ClusterRelay], tmp_path: Path
) -> None:
    a, b = two_relays
    first, second = await asyncio.gather(
        connect(a.server, "dave", "dave-one-pass", tmp_path=tmp_path / "1", login=False),
        connect(b.server, "dave", "dave-two-pass", tmp_path=tmp_path / "2", login=False),
    )
    outcomes = []
    for cut in (first, second):
        try:
            done = await cut.wait_for(ev.Event, lambda e: isinstance(e, ev.LoggedIn | ev.LoginRefused))
        except TimeoutError:
            raise AssertionError(f"{first.seen}\n{second.seen}") from None
        outcomes.append(done)
        await cut.close()
    won = [o for o in outcomes if isinstance(o, ev.LoggedIn)]
    lost = [o for o in outcomes if isinstance(o, ev.LoginRefused)]
    assert len(won) == 1 and won[0].registered
    # the loser failed cleanly: its name is taken, or (if the winner's account reached its relay
    # first) its password is not the account's
    assert len(lost) == 1 and lost[0].code in (ErrorCode.NAME_IN_USE, ErrorCode.INVALID_PASSWORD)
    found = await a.people.accounts.accounts.get("dave")
    assert found is not None


async def test_a_private_message_to_the_other_relay_arrives_once(
    two_relays: tuple[ClusterRelay, ClusterRelay], tmp_path: Path
) -> None:
    a, b = two_relays
    alice = await connect(a.server, "alice", tmp_path=tmp_path)
    bob = await connect(b.server, "bob", tmp_path=tmp_path)
    try:
        await alice.wait_for(ev.UserJoined, lambda e: e.user == "bob")
        alice.client.submit("/msg bob psst, over here")
        got = await bob.wait_for(ev.PrivateReceived)
        assert (got.sender, got.text, got.held) == ("alice", "psst, over here", False)
        await alice.wait_for(ev.MessageDelivered, lambda e: e.to == "bob")
        bob.client.submit("/msg alice hi back")
        await alice.wait_for(ev.PrivateReceived, lambda e: e.text == "hi back")
        alice.client.submit("/msg bob second")
        await bob.wait_for(ev.PrivateReceived, lambda e: e.text == "second")
        assert [e.text for e in bob.of(ev.PrivateReceived)] == ["psst, over here", "second"]
    finally:
        await alice.close()
        await bob.close()


async def test_a_private_message_to_someone_offline_is_delivered_at_their_login_on_another_relay(
    two_relays: tuple[ClusterRelay, ClusterRelay], tmp_path: Path
) -> None:
    a, b = two_relays
    bob = await connect(b.server, "bob", tmp_path=tmp_path)  # makes the account
    await bob.close()
    alice = await connect(a.server, "alice", tmp_path=tmp_path)
    try:
        alice.client.submit("/msg bob while you were out")
        await alice.wait_for(ev.MessageDelivered, lambda e: e.to == "bob")
        await alice.wait_for(ev.ServerNotice, lambda e: e.code == ErrorCode.RECIPIENT_OFFLINE)
        assert a.people.privates.held == 1
        # bob comes back, on the other relay
        bob = await connect(b.server, "bob", tmp_path=tmp_path)
        got = await bob.wait_for(ev.PrivateReceived)
        assert (got.sender, got.text, got.held) == ("alice", "while you were out", True)
        await bob.close()
        # it was delivered once: a later login anywhere finds nothing waiting
        again = await connect(a.server, "bob", tmp_path=tmp_path / "again")
        await again.wait_for(ev.PresenceUpdated)
        assert not again.of(ev.PrivateReceived)
        await again.close()
    finally:
        await alice.close()


async def test_a_private_to_and_a_ban_of_someone_who_signed_up_a_moment_ago_elsewhere(
    two_relays: tuple[ClusterRelay, ClusterRelay], tmp_path: Path
) -> None:
    """Relay A has no copy of bob's account yet (its watch is stopped here, as if late): a private
    message to him is held for his next login, a ban of him (listed on B) holds, and a name nobody
    has is still refused."""
    a, b = two_relays
    first = await connect(a.server, "alice", tmp_path=tmp_path)
    await first.close()
    a.server.relay.store.set_admin("alice", True)  # an operator in every room of relay A
    await a.people.accounts.close()  # A's copy of the bucket stops here: alice stays an admin
    bob = await connect(b.server, "bob", tmp_path=tmp_path)
    await bob.close()
    assert a.server.relay.store.get_account("bob") is None
    alice = await connect(a.server, "alice", tmp_path=tmp_path / "again")
    try:
        alice.client.submit("/msg bob while you were out")
        await alice.wait_for(ev.MessageDelivered, lambda e: e.to == "bob", timeout=15)
        await alice.wait_for(ev.ServerNotice, lambda e: e.code == ErrorCode.RECIPIENT_OFFLINE)
        alice.client.submit("/msg nobody-here hello?")
        failed = await alice.wait_for(ev.MessageFailed, lambda e: e.to == "nobody-here", timeout=15)
        assert "not online" in failed.reason
        bob = await connect(b.server, "bob", tmp_path=tmp_path / "bob")
        assert (await bob.wait_for(ev.PrivateReceived, timeout=15)).text == "while you were out"
        await alice.wait_for(ev.UserJoined, lambda e: e.user == "bob", timeout=15)
        alice.client.submit("/ban bob 5 spamming")
        gone = await bob.wait_for(ev.RoomLeft, timeout=15)
        assert (gone.code, gone.by) == (ErrorCode.BANNED, "alice")
        await bob.close()
    finally:
        await alice.close()


async def test_labchat_admin_cluster_add_then_login_on_any_relay(
    two_relays: tuple[ClusterRelay, ClusterRelay], nats_cluster: NatsCluster, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = two_relays
    monkeypatch.setenv("LABCHAT_PASSWORD", "erin-secret")
    urls = nats_cluster.url_list

    def admin_cli(*argv: str) -> int:  # the real entry point; it runs its own event loop
        return admin.main(["--cluster", urls, *argv])

    assert await asyncio.to_thread(admin_cli, "add", "Erin") == 0
    assert capsys.readouterr().out == "added Erin\n"
    assert await asyncio.to_thread(admin_cli, "add", "erin") == 1
    assert "exists already" in capsys.readouterr().err
    assert await asyncio.to_thread(admin_cli, "grant", "erin") == 0
    assert capsys.readouterr().out == "Erin is now a server admin\n"
    assert await asyncio.to_thread(admin_cli, "list") == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("Erin\tcreated ")
    erin = await connect(b.server, "erin", "erin-secret", tmp_path=tmp_path)
    logged = await erin.wait_for(ev.LoggedIn)
    assert logged.user == "Erin" and not logged.registered
    await erin.close()
    await b.people.accounts.wait_until(lambda: b.server.relay.store.is_admin("erin"), timeout=15)
    monkeypatch.setenv("LABCHAT_PASSWORD", "erin-new-secret")
    assert await asyncio.to_thread(admin_cli, "passwd", "erin") == 0
    capsys.readouterr()
    # the mirror follows: the new password works on the other relay too, the old one does not
    store_a = a.server.relay.store
    await a.people.accounts.wait_until(lambda: store_a.check_password("erin", "erin-new-secret"), timeout=15)
    old = await connect(a.server, "erin", "erin-secret", tmp_path=tmp_path / "old", login=False)
    assert (await old.wait_for(ev.LoginRefused)).code == ErrorCode.INVALID_PASSWORD
    await old.close()
    again = await connect(a.server, "erin", "erin-new-secret", tmp_path=tmp_path / "a")
    await again.close()
    assert await asyncio.to_thread(admin_cli, "remove", "erin") == 0
    assert await asyncio.to_thread(admin_cli, "remove", "erin") == 1
    assert capsys.readouterr().err == "labchat-admin: no account named 'erin'\n"


def test_labchat_admin_cluster_unreachable_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin, "CLUSTER_WAIT_S", 1.0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    assert admin.main(["--cluster", f"nats://127.0.0.1:{port}", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("labchat-admin: cannot reach the NATS cluster") and err.count("\n") == 1


async def test_the_people_of_a_relay_that_died_time_out_everywhere(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a = await start_relay(tmp_path, nats_cluster, "a", ttl_s=1.5)  # the first relay makes the bucket
    b = await start_relay(tmp_path, nats_cluster, "b", ttl_s=1.5)
    alice = await connect(a.server, "alice", tmp_path=tmp_path)
    bob = await connect(b.server, "bob", tmp_path=tmp_path)
    try:
        await alice.wait_for(ev.UserJoined, lambda e: e.user == "bob")
        # relay B vanishes without a word (as under kill -9): nothing deletes bob's entry
        await b.conn.nc.close()
        b.server.protocol.close()
        # still listed, but no relay answers for bob: held for his next login, not lost
        alice.client.submit("/msg bob are you there?")
        await alice.wait_for(ev.MessageDelivered, lambda e: e.to == "bob", timeout=10)
        left = await alice.wait_for(ev.UserLeft, lambda e: e.user == "bob", timeout=10)
        assert left.reason == "timed out"
        alice.client.submit("/who")
        await alice.wait_for(ev.PresenceUpdated, lambda e: e.requested and e.users == ("alice",))
        back = await connect(a.server, "bob", tmp_path=tmp_path / "back")
        got = await back.wait_for(ev.PrivateReceived)
        assert (got.text, got.held) == ("are you there?", True)
        await back.close()
    finally:
        await alice.close()
        await bob.close()
        await a.close()
        await b.bridge.close()


async def test_a_ban_on_one_relay_holds_on_the_other(
    two_relays: tuple[ClusterRelay, ClusterRelay], tmp_path: Path
) -> None:
    a, b = two_relays
    first = await connect(a.server, "alice", tmp_path=tmp_path)
    await first.close()
    # an operator in every room: granted in the bucket (as `labchat-admin --cluster grant` does),
    # so that A's copy of her account, arriving by its watch, says so too
    await a.people.accounts.accounts.change("alice", lambda r: replace(r, admin=True))
    await a.people.accounts.wait_until(lambda: a.server.relay.store.is_admin("alice"), timeout=15)
    alice = await connect(a.server, "alice", tmp_path=tmp_path / "again")
    bob = await connect(b.server, "bob", tmp_path=tmp_path)
    try:
        await alice.wait_for(ev.UserJoined, lambda e: e.user == "bob", timeout=15)
        alice.client.submit("/ban bob 5 spamming")
        gone = await bob.wait_for(ev.RoomLeft)
        assert (gone.room, gone.code, gone.by) == ("lobby", ErrorCode.BANNED, "alice")
        assert gone.reason == "spamming"
        await alice.wait_for(ev.UserLeft, lambda e: e.user == "bob")
        bob.client.submit("/join lobby")
        refused = await bob.wait_for(ev.RequestFailed)
        assert refused.code == ErrorCode.BANNED
        assert b.server.relay.rooms["lobby"].sanction("bob", "ban", 0) is not None
        alice.client.submit("/unban bob")
        await b.people.moderation.wait_applied(2, timeout=15)
        states = len(bob.of(ev.RoomState))  # past his login's, which also says "lobby, joined"
        bob.client.submit("/join lobby")
        await bob.wait_until(
            lambda: any(e.room == "lobby" and e.joined for e in bob.of(ev.RoomState)[states:]), timeout=15
        )
        joins = lambda _e: [j.user for j in alice.of(ev.UserJoined)].count("bob") == 2  # noqa: E731
        await alice.wait_for(ev.UserJoined, joins)
    finally:
        await alice.close()
        await bob.close()


async def test_a_room_made_and_set_on_one_relay_exists_alike_on_the_other(
    two_relays: tuple[ClusterRelay, ClusterRelay], tmp_path: Path
) -> None:
    a, b = two_relays
    alice = await connect(a.server, "alice", tmp_path=tmp_path)
    bob = await connect(b.server, "bob", tmp_path=tmp_path)
    try:
        alice.client.submit("/join lab")
        await alice.wait_for(ev.RoomState, lambda e: e.room == "lab" and e.joined)
        await b.people.rooms.wait_until(lambda: "lab" in b.server.relay.rooms, timeout=15)
        bob.client.submit("/join lab")
        await bob.wait_for(ev.RoomState, lambda e: e.room == "lab" and e.joined)
        await alice.wait_for(ev.UserJoined, lambda e: e.room == "lab" and e.user == "bob")
        # alice made it, so she is its operator on every relay: her topic reaches bob on relay B
        alice.client.submit("/topic Rust week")  # in her current room, lab
        news = await bob.wait_for(ev.RoomEvent, lambda e: e.room == "lab" and e.actor == "alice")
        assert "Rust week" in news.text
        await bob.wait_for(ev.RoomState, lambda e: e.room == "lab" and e.topic == "Rust week")
        assert b.server.relay.rooms["lab"].roles.get("alice") == "op"
        # and a room line in it crosses relays (its stream is followed on B too)
        bob.client.submit("hi from relay B")
        await alice.wait_for(ev.MessageReceived, lambda e: e.room == "lab" and e.text == "hi from relay B")
    finally:
        await alice.close()
        await bob.close()
