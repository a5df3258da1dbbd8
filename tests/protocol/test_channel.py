"""The secure channel end to end, through in-memory datagram lists, with a plain-float clock."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labchat.protocol.channel import (
    DATA_OVERHEAD_BYTES,
    HELLO_MIN_BYTES,
    MAX_DATAGRAM_BYTES,
    MAX_PAYLOAD_BYTES,
    PATH_DATAGRAM_BYTES,
    REPLAY_WINDOW_SIZE,
    RESET_BYTES,
    WELCOME_BYTES,
    Address,
    ChannelConfig,
    ChannelData,
    ClientChannel,
    DatagramKind,
    HandshakeCompleted,
    ReplayWindow,
    ResetReceived,
    ServerChannel,
    ServerKeyChanged,
    fingerprint,
)
from labchat.protocol.errors import LocalProtocolError
from labchat.protocol.noise import KeyPair

SERVER_KEY = bytes(range(1, 33))
SERVER_PUBLIC = KeyPair.from_private(SERVER_KEY).public
ADDR: Address = ("127.0.0.1", 50000)


def make_rng(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def new_server(config: ChannelConfig | None = None, seed: int = 1) -> ServerChannel:
    return ServerChannel(SERVER_KEY, config, rng=make_rng(seed))


def new_client(
    expected: bytes | None = None, config: ChannelConfig | None = None, seed: int = 2
) -> ClientChannel:
    return ClientChannel(expected, rng=make_rng(seed), config=config)


def pump(
    server: ServerChannel, client: ClientChannel, addr: Address = ADDR, now: float = 0.0
) -> list[ChannelData]:
    """Deliver queued datagrams both ways until both sides are quiet."""
    delivered: list[ChannelData] = []
    for _ in range(20):
        to_server = client.datagrams_to_send()
        to_client = server.datagrams_to_send()
        if not to_server and not to_client:
            break
        for datagram in to_server:
            result = server.receive_datagram(datagram, addr, now)
            if result is not None:
                delivered.append(result)
        for datagram, destination in to_client:
            assert destination == addr
            client.receive_datagram(datagram, now)
    return delivered


def connect(server: ServerChannel, client: ClientChannel, addr: Address = ADDR, now: float = 0.0) -> bytes:
    """Handshake, then one DATA so the server confirms the session. Returns the session id."""
    client.start(now)
    pump(server, client, addr, now)
    assert client.established
    session_id = client.session_id
    assert session_id is not None
    got = server.receive_datagram(client.seal(b"confirm", now), addr, now)
    assert got == ChannelData(session_id, addr, b"confirm")
    return session_id


def established_pair(
    config: ChannelConfig | None = None,
) -> tuple[ServerChannel, ClientChannel, bytes]:
    server, client = new_server(config), new_client(config=config)
    return server, client, connect(server, client)


# -- handshake and data ---------------------------------------------------------------------------


def test_handshake_then_data_both_ways() -> None:
    server, client = new_server(), new_client()
    client.start(0.0)
    [hello] = client.datagrams_to_send()
    assert hello[:4] == b"LC\x01\x01" and len(hello) >= HELLO_MIN_BYTES
    assert server.receive_datagram(hello, ADDR, 0.0) is None
    [(welcome, to)] = server.datagrams_to_send()
    assert to == ADDR and len(welcome) == WELCOME_BYTES and welcome[3] == DatagramKind.WELCOME
    assert client.receive_datagram(welcome, 0.0) is None
    assert client.established and client.server_key == SERVER_PUBLIC
    assert list(client.events()) == [
        HandshakeCompleted(SERVER_PUBLIC, fingerprint(SERVER_PUBLIC), first_contact=True)
    ]
    assert list(client.events()) == []  # drained
    session_id = client.session_id
    assert session_id is not None and welcome[4:12] == session_id
    assert not server.is_open(session_id)  # half-open until the first DATA
    up = client.seal(b"hello server", 0.1)
    assert up[3] == DatagramKind.DATA and len(up) == DATA_OVERHEAD_BYTES + len(b"hello server")
    assert server.receive_datagram(up, ADDR, 0.1) == ChannelData(session_id, ADDR, b"hello server")
    assert server.is_open(session_id)
    down, to = server.seal(session_id, b"hello client", 0.2)
    assert to == ADDR
    assert client.receive_datagram(down, 0.2) == b"hello client"
    assert server.stats.handshakes == 1 and client.stats.handshakes == 1


def test_constants_give_the_layer_above_its_budget() -> None:
    assert DATA_OVERHEAD_BYTES == 37
    assert MAX_PAYLOAD_BYTES == MAX_DATAGRAM_BYTES - 37
    server, client, session_id = established_pair()
    assert len(client.seal(bytes(MAX_PAYLOAD_BYTES), 0.0)) == MAX_DATAGRAM_BYTES
    with pytest.raises(LocalProtocolError):
        client.seal(bytes(MAX_PAYLOAD_BYTES + 1), 0.0)
    with pytest.raises(LocalProtocolError):
        server.seal(session_id, bytes(MAX_PAYLOAD_BYTES + 1), 0.0)
    with pytest.raises(LocalProtocolError):
        server.seal(b"\x00" * 8, b"x", 0.0)
    with pytest.raises(LocalProtocolError):
        new_client().seal(b"x", 0.0)


def test_fingerprint_is_openssh_style() -> None:
    printed = fingerprint(SERVER_PUBLIC)
    assert printed.startswith("SHA256:") and len(printed) == 7 + 43 and "=" not in printed


def test_replayed_datagram_is_dropped() -> None:
    server, client, _ = established_pair()
    datagram = client.seal(b"once", 1.0)
    assert server.receive_datagram(datagram, ADDR, 1.0) is not None
    assert server.receive_datagram(datagram, ADDR, 1.0) is None
    assert server.stats.replayed == 1
    down, _ = server.seal(client.session_id or b"", b"x", 1.0)
    assert client.receive_datagram(down, 1.0) == b"x"
    assert client.receive_datagram(down, 1.0) is None
    assert client.stats.replayed == 1


def test_reordered_within_window_are_accepted_and_too_old_dropped() -> None:
    server, client, _ = established_pair()
    datagrams = [client.seal(str(i).encode(), 1.0) for i in range(200)]
    got = [server.receive_datagram(d, ADDR, 1.0) for d in reversed(datagrams)]
    assert [g.payload for g in got if g is not None] == [str(i).encode() for i in reversed(range(200))]
    old = client.seal(b"old", 1.0)
    for _ in range(REPLAY_WINDOW_SIZE):
        client.seal(b"", 1.0)
    newest = client.seal(b"new", 1.0)
    assert server.receive_datagram(newest, ADDR, 1.0) is not None
    assert server.receive_datagram(old, ADDR, 1.0) is None
    assert server.stats.too_old == 1


def test_forged_session_id_is_dropped_and_answered_with_reset() -> None:
    server, client, session_id = established_pair()
    list(client.events())
    datagram = bytearray(client.seal(b"x", 1.0))
    datagram[4:12] = bytes(8) if session_id != bytes(8) else b"\x01" * 8
    assert server.receive_datagram(bytes(datagram), ADDR, 1.0) is None
    assert server.stats.unknown_session == 1
    [(reset, to)] = server.datagrams_to_send()
    assert to == ADDR and len(reset) == RESET_BYTES <= len(datagram)
    # The client ignores a RESET for a session that is not its own.
    client.receive_datagram(reset, 1.0)
    assert list(client.events()) == [] and client.stats.unknown_session == 1


def test_forged_data_with_the_right_session_id_fails_authentication() -> None:
    server, client, session_id = established_pair()
    forged = b"LC\x01\x04" + session_id + b"\x00" + (5).to_bytes(8, "big") + bytes(40)
    assert server.receive_datagram(forged, ADDR, 1.0) is None
    assert server.stats.auth_failed == 1
    assert server.receive_datagram(client.seal(b"still fine", 1.0), ADDR, 1.0) is not None


# -- hostile bytes --------------------------------------------------------------------------------

_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@_settings
@given(data=st.data())
def test_any_bit_flip_in_data_is_dropped(data: st.DataObject) -> None:
    server, client, session_id = established_pair()
    for sender, deliver in (
        (lambda: client.seal(b"payload!", 1.0), lambda d: server.receive_datagram(d, ADDR, 1.0)),
        (
            lambda: server.seal(session_id, b"payload!", 1.0)[0],
            lambda d: client.receive_datagram(d, 1.0),
        ),
    ):
        original = sender()
        position = data.draw(st.integers(0, len(original) - 1))
        flipped = bytearray(original)
        flipped[position] ^= 1 << data.draw(st.integers(0, 7))
        assert deliver(bytes(flipped)) is None
        got = deliver(original)  # the genuine datagram still gets through afterwards
        assert got is not None


@_settings
@given(data=st.data())
def test_any_bit_flip_in_welcome_is_dropped_and_the_real_one_still_works(
    data: st.DataObject,
) -> None:
    server, client = new_server(), new_client()
    client.start(0.0)
    pump_hello = client.datagrams_to_send()
    server.receive_datagram(pump_hello[0], ADDR, 0.0)
    [(welcome, _)] = server.datagrams_to_send()
    flipped = bytearray(welcome)
    flipped[data.draw(st.integers(0, len(welcome) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    assert client.receive_datagram(bytes(flipped), 0.0) is None
    assert not client.established and list(client.events()) == []
    client.receive_datagram(welcome, 0.0)
    assert client.established


@_settings
@given(data=st.data())
def test_any_bit_flip_in_hello_spoils_the_handshake(data: st.DataObject) -> None:
    server, client = new_server(), new_client()
    client.start(0.0)
    [hello] = client.datagrams_to_send()
    flipped = bytearray(hello)
    # Past the header and cookie length: the ephemeral key and the padding (hashed into h).
    flipped[data.draw(st.integers(5, len(hello) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    server.receive_datagram(bytes(flipped), ADDR, 0.0)
    for welcome, _ in server.datagrams_to_send():
        client.receive_datagram(welcome, 0.0)
    assert not client.established


_hostile = st.one_of(
    st.binary(max_size=1300),
    st.builds(
        lambda kind, rest: b"LC\x01" + bytes([kind]) + rest,
        st.integers(0, 255),
        st.binary(max_size=1300),
    ),
)


@_settings
@given(junk=st.lists(_hostile, max_size=8))
def test_random_bytes_never_raise_on_the_server(junk: list[bytes]) -> None:
    server, client, _ = established_pair()
    for index, datagram in enumerate(junk):
        assert server.receive_datagram(datagram, ("10.0.0.9", 1000 + index), 1.0) is None
    server.datagrams_to_send()
    assert server.receive_datagram(client.seal(b"alive", 1.0), ADDR, 1.0) is not None


@_settings
@given(junk=st.lists(_hostile, max_size=8), handshaking=st.booleans())
def test_random_bytes_never_raise_on_the_client(junk: list[bytes], handshaking: bool) -> None:
    client = new_client()
    if handshaking:
        client.start(0.0)
    else:
        _, client, _ = established_pair()
    for datagram in junk:
        assert client.receive_datagram(datagram, 1.0) is None


def test_wrong_magic_version_kind_and_length_are_counted() -> None:
    server = new_server()
    server.receive_datagram(b"XX\x01\x01" + bytes(200), ADDR, 0.0)
    server.receive_datagram(b"LC\x02\x01" + bytes(200), ADDR, 0.0)
    server.receive_datagram(b"LC\x01\x0a" + bytes(200), ADDR, 0.0)  # kinds 1-9 are known (2.1)
    server.receive_datagram(b"LC\x01\x01" + bytes(20), ADDR, 0.0)  # HELLO too short
    server.receive_datagram(b"LC\x01\x03" + bytes(200), ADDR, 0.0)  # WELCOME sent to a server
    server.receive_datagram(b"LC\x01\x01" + bytes(2000), ADDR, 0.0)  # over 1200 bytes
    stats = server.stats
    assert (stats.malformed, stats.bad_version, stats.unknown_kind, stats.unexpected) == (
        3,
        1,
        1,
        1,
    )
    assert server.datagrams_to_send() == []


# -- key pinning ----------------------------------------------------------------------------------


def test_pinned_key_matches() -> None:
    server, client = new_server(), new_client(expected=SERVER_PUBLIC)
    connect(server, client)
    [event] = client.events()
    assert isinstance(event, HandshakeCompleted) and not event.first_contact


def test_pinned_key_mismatch_aborts() -> None:
    other = KeyPair.from_private(bytes([9]) * 32).public
    server, client = new_server(), new_client(expected=other)
    client.start(0.0)
    pump(server, client)
    assert list(client.events()) == [ServerKeyChanged(fingerprint(other), fingerprint(SERVER_PUBLIC))]
    assert not client.established and client.session_id is None
    assert client.next_timer() is None and client.datagrams_to_send() == []
    with pytest.raises(LocalProtocolError):
        client.seal(b"secret", 0.0)


# -- cookies, rate limits, amplification ---------------------------------------------------------


def test_cookie_flow_under_load() -> None:
    server = new_server(ChannelConfig(cookie_half_open_threshold=0))
    client = new_client()
    client.start(0.0)
    [hello] = client.datagrams_to_send()
    server.receive_datagram(hello, ADDR, 0.0)
    [(cookie, _)] = server.datagrams_to_send()
    assert cookie[3] == DatagramKind.COOKIE and cookie[4:12] == hello[5:13]
    assert server.stats.cookies_sent == 1 and server.stats.handshakes == 0  # no state created
    client.receive_datagram(cookie, 0.0)
    [hello_with_cookie] = client.datagrams_to_send()
    assert hello_with_cookie[4] == 24 and hello_with_cookie[5:29] == cookie[12:]
    assert hello_with_cookie[29:] == hello[5:]  # same ephemeral, same Noise message
    # The cookie is bound to the address: from elsewhere it earns only another COOKIE.
    server.receive_datagram(hello_with_cookie, ("127.0.0.1", 50001), 1.0)
    assert server.datagrams_to_send()[0][0][3] == DatagramKind.COOKIE
    server.receive_datagram(hello_with_cookie, ADDR, 1.0)
    [(welcome, _)] = server.datagrams_to_send()
    assert welcome[3] == DatagramKind.WELCOME
    client.receive_datagram(welcome, 1.0)
    assert client.established and client.stats.cookies_received == 1


def test_cookie_expires_after_two_buckets() -> None:
    server = new_server(ChannelConfig(cookie_half_open_threshold=0, cookie_bucket_s=30.0))
    client = new_client()
    client.start(0.0)
    server.receive_datagram(client.datagrams_to_send()[0], ADDR, 0.0)
    client.receive_datagram(server.datagrams_to_send()[0][0], 0.0)
    [hello_with_cookie] = client.datagrams_to_send()
    server.receive_datagram(hello_with_cookie, ADDR, 61.0)  # bucket 2; the cookie was bucket 0
    assert server.datagrams_to_send()[0][0][3] == DatagramKind.COOKIE
    assert server.stats.handshakes == 0


def test_hello_rate_above_threshold_demands_cookies() -> None:
    server = new_server(ChannelConfig(cookie_hello_rate_per_s=1.0, cookie_hello_burst=2.0))
    kinds = []
    for port in range(3):
        client = new_client(seed=10 + port)
        client.start(0.0)
        server.receive_datagram(client.datagrams_to_send()[0], ("127.0.0.1", port + 1), 0.0)
        kinds.append(server.datagrams_to_send()[0][0][3])
    assert kinds == [DatagramKind.WELCOME, DatagramKind.WELCOME, DatagramKind.COOKIE]


def test_per_host_hello_rate_limit() -> None:
    server = new_server(ChannelConfig(hello_rate_per_s=1.0, hello_burst=2.0))
    for port in range(3):
        client = new_client(seed=20 + port)
        client.start(0.0)
        server.receive_datagram(client.datagrams_to_send()[0], ("10.1.1.1", port + 1), 0.0)
    assert server.stats.handshakes == 2 and server.stats.handshake_rate_limited == 1
    client = new_client(seed=30)
    client.start(1.0)  # one second later a token is back
    server.receive_datagram(client.datagrams_to_send()[0], ("10.1.1.1", 9), 1.0)
    assert server.stats.handshakes == 3


def test_many_local_clients_with_default_config() -> None:
    server = new_server()
    for port in range(60):
        client = new_client(seed=100 + port)
        server.mark_authenticated(connect(server, client, ("127.0.0.1", 40000 + port)))
    assert server.stats.handshakes == 60 and server.stats.handshake_rate_limited == 0


def test_unconfirmed_address_never_gets_more_than_three_times_what_it_sent() -> None:
    server = new_server(ChannelConfig(cookie_half_open_threshold=3))
    victim = "192.0.2.7"
    received = sent = 0
    rng = random.Random(5)
    for step in range(40):
        client = new_client(seed=200 + step % 7)  # some HELLOs repeat: retransmits
        client.start(0.0)
        hello = client.datagrams_to_send()[0]
        datagram = hello if step % 3 else b"LC\x01\x04" + rng.randbytes(8 + 9 + 16)
        received += len(datagram)
        server.receive_datagram(datagram, (victim, 1000 + step % 2), float(step) / 100)
        sent += sum(len(d) for d, to in server.datagrams_to_send() if to[0] == victim)
        assert sent <= 3 * received


def test_amplification_budget_blocks_a_reply() -> None:
    server, client = new_server(), new_client()
    client.start(0.0)
    [hello] = client.datagrams_to_send()
    server.receive_datagram(hello, ADDR, 0.0)
    assert len(server.datagrams_to_send()) == 1
    server._addresses[ADDR[0]].sent_bytes = 10**6  # white box: pretend the budget is spent
    server.receive_datagram(hello, ADDR, 0.1)  # the retransmit adds len(hello) of budget only
    assert server.datagrams_to_send() == [] and server.stats.amplification_limited == 1


# -- timers and retransmits -----------------------------------------------------------------------


def test_hello_retransmit_backoff_and_same_welcome() -> None:
    server, client = new_server(), new_client()
    client.start(10.0)
    [hello] = client.datagrams_to_send()
    assert client.next_timer() == 10.25
    client.handle_timer(10.1)
    assert client.datagrams_to_send() == []
    times = []
    for _ in range(5):
        deadline = client.next_timer()
        assert deadline is not None
        times.append(deadline)
        client.handle_timer(deadline)
        assert client.datagrams_to_send() == [hello]  # same ephemeral, same bytes
    assert times == [10.25, 10.75, 11.75, 13.75, 15.75]
    server.receive_datagram(hello, ADDR, 16.0)
    server.receive_datagram(hello, ADDR, 16.1)
    [(first, _), (second, _)] = server.datagrams_to_send()
    assert first == second and server.stats.handshakes == 1
    client.receive_datagram(second, 16.2)
    assert client.established and client.next_timer() is None


def test_half_open_sessions_expire() -> None:
    server, client = new_server(ChannelConfig(handshake_timeout_s=5.0)), new_client()
    client.start(0.0)
    pump(server, client)
    assert server.next_timer() == 5.0
    server.handle_timer(4.9)
    assert server.stats.handshakes_expired == 0
    server.handle_timer(5.0)
    assert server.stats.handshakes_expired == 1 and server.next_timer() is None
    assert server.receive_datagram(client.seal(b"late", 6.0), ADDR, 6.0) is None
    assert server.stats.unknown_session == 1


def test_hello_after_confirmation_is_not_a_new_session() -> None:
    server, client = new_server(), new_client()
    client.start(0.0)
    [hello] = client.datagrams_to_send()
    server.receive_datagram(hello, ADDR, 0.0)
    for welcome, _ in server.datagrams_to_send():
        client.receive_datagram(welcome, 0.0)
    server.receive_datagram(client.seal(b"x", 0.1), ADDR, 0.1)
    server.receive_datagram(hello, ADDR, 0.2)  # a late duplicate
    assert server.datagrams_to_send() == [] and server.stats.handshakes == 1
    assert server.next_timer() == 10.0  # no half-open deadline left: only the pre-login one
    server.mark_authenticated(client.session_id or b"")
    assert server.next_timer() is None


def test_half_open_cap_evicts_oldest_and_session_cap_refuses() -> None:
    server = new_server(ChannelConfig(max_half_open=2, max_sessions=2))
    clients = [new_client(seed=300 + i) for i in range(3)]
    for index, client in enumerate(clients):
        client.start(0.0)
        pump(server, client, ("127.0.0.1", 7000 + index))
    assert all(c.established for c in clients)
    first_sid = clients[0].session_id or b""
    server.receive_datagram(clients[0].seal(b"x", 0.1), ("127.0.0.1", 7000), 0.1)
    assert not server.is_open(first_sid) and server.stats.unknown_session == 1
    server.datagrams_to_send()  # the RESET for the evicted session
    for index in (1, 2):
        assert server.receive_datagram(clients[index].seal(b"x", 0.1), ("127.0.0.1", 7000 + index), 0.1)
    late = new_client(seed=400)
    late.start(0.2)
    pump(server, late, ("127.0.0.1", 7100), 0.2)
    assert not late.established and server.stats.session_table_full == 1
    server.close(clients[1].session_id or b"")
    late.handle_timer(10.0)
    pump(server, late, ("127.0.0.1", 7100), 10.0)
    assert late.established


# -- reset after a server restart -----------------------------------------------------------------


def test_reset_after_server_restart_leads_to_a_new_handshake() -> None:
    server, client, old_sid = established_pair()
    list(client.events())
    restarted = new_server(seed=99)
    restarted.receive_datagram(client.seal(b"anyone?", 5.0), ADDR, 5.0)
    [(reset, _)] = restarted.datagrams_to_send()
    assert reset == b"LC\x01\x05" + old_sid and restarted.stats.resets_sent == 1
    client.receive_datagram(reset, 5.0)
    assert list(client.events()) == [ResetReceived()]
    client.start(5.0)
    # Until the new WELCOME arrives, the old keys keep working (the RESET may have been forged).
    assert client.established and client.session_id == old_sid
    assert server.receive_datagram(client.seal(b"old keys", 5.0), ADDR, 5.0) is not None
    client.receive_datagram(reset, 5.0)  # a second hint while re-handshaking raises no new event
    assert list(client.events()) == []
    pump(restarted, client, ADDR, 5.1)
    [event] = client.events()
    assert isinstance(event, HandshakeCompleted) and not event.first_contact
    new_sid = client.session_id
    assert new_sid is not None and new_sid != old_sid
    assert restarted.receive_datagram(client.seal(b"back", 5.2), ADDR, 5.2) == ChannelData(
        new_sid, ADDR, b"back"
    )


def test_resets_are_rate_limited() -> None:
    server = new_server(ChannelConfig(reset_rate_per_s=1.0, reset_burst=3.0))
    for _ in range(10):
        server.receive_datagram(b"LC\x01\x04" + bytes(8 + 9 + 16), ADDR, 0.0)
    assert len(server.datagrams_to_send()) == 3
    assert server.stats.resets_sent == 3 and server.stats.resets_rate_limited == 7


# -- migration ------------------------------------------------------------------------------------


def challenges_to(server: ServerChannel, addr: Address) -> list[bytes]:
    """Drain the server's output; the PATH_CHALLENGEs in it that go to `addr`."""
    out = server.datagrams_to_send()
    return [d for d, to in out if to == addr and d[3] == DatagramKind.PATH_CHALLENGE]


def test_migration_moves_only_after_the_new_address_answers_a_challenge() -> None:
    server, client, session_id = established_pair()
    moved: Address = ("127.0.0.1", 60000)
    got = server.receive_datagram(client.seal(b"from wifi", 1.0), moved, 1.0)
    assert got == ChannelData(session_id, ADDR, b"from wifi")  # authentic, but not yet moved
    assert server.seal(session_id, b"x", 1.0)[1] == ADDR
    [challenge] = challenges_to(server, moved)
    assert len(challenge) == PATH_DATAGRAM_BYTES == 45 and challenge[4:12] == session_id
    assert client.receive_datagram(challenge, 1.01) is None
    [response] = client.datagrams_to_send()
    assert response[3] == DatagramKind.PATH_RESPONSE and len(response) == PATH_DATAGRAM_BYTES
    assert server.receive_datagram(response, moved, 1.02) is None
    assert server.address(session_id) == moved and server.seal(session_id, b"x", 1.02)[1] == moved
    assert server.stats.migrations == 1 and client.stats.path_responses_sent == 1
    got = server.receive_datagram(client.seal(b"settled", 1.1), moved, 1.1)
    assert got == ChannelData(session_id, moved, b"settled")
    assert server.datagrams_to_send() == []  # a validated address is not challenged again
    # A replayed response, a forged datagram and a replayed DATA from elsewhere move nothing.
    attacker: Address = ("10.6.6.6", 666)
    assert server.receive_datagram(response, moved, 1.2) is None
    forged = b"LC\x01\x04" + session_id + b"\x00" + (99).to_bytes(8, "big") + bytes(30)
    assert server.receive_datagram(forged, attacker, 1.2) is None
    genuine = client.seal(b"y", 1.3)
    assert server.receive_datagram(genuine, moved, 1.3) is not None
    assert server.receive_datagram(genuine, attacker, 1.3) is None
    assert server.datagrams_to_send() == [] and server.address(session_id) == moved
    # A reordered older datagram from the old address challenges nothing and moves nothing.
    older, newer = client.seal(b"1", 2.0), client.seal(b"2", 2.0)
    server.receive_datagram(newer, moved, 2.0)
    assert server.receive_datagram(older, ADDR, 2.0) == ChannelData(session_id, moved, b"1")
    assert server.datagrams_to_send() == [] and server.address(session_id) == moved


def test_a_copy_that_arrives_first_only_challenges_the_copier() -> None:
    server, client, session_id = established_pair()
    copier: Address = ("10.6.6.6", 666)
    datagram = client.seal(b"hi", 1.0)
    assert server.receive_datagram(datagram, copier, 1.0) == ChannelData(session_id, ADDR, b"hi")
    [challenge] = challenges_to(server, copier)
    assert server.receive_datagram(datagram, ADDR, 1.001) is None  # the genuine one: a replay
    assert server.stats.replayed == 1
    # The server keeps sending to the client, which keeps talking from where it is.
    for step in range(1, 20):
        now = 1.0 + step * 0.05
        down, to = server.seal(session_id, b"news %d" % step, now)
        assert to == ADDR and client.receive_datagram(down, now) == b"news %d" % step
        up = client.seal(b"ack %d" % step, now)
        assert server.receive_datagram(up, copier, now) is not None  # the copy wins every race
        server.receive_datagram(up, ADDR, now)
    assert server.address(session_id) == ADDR
    # The copier cannot read its challenges. Forwarded to the client, the answer comes from the
    # client's own address, and validates nothing.
    client.receive_datagram(challenge, 2.0)
    [response] = client.datagrams_to_send()
    assert server.receive_datagram(response, ADDR, 2.0) is None
    assert server.stats.path_response_mismatch == 1 and server.address(session_id) == ADDR
    # The client's latest DATA reached the server from its own address: a copied answer sent from
    # the copier's address then proves the copier's address but does not move the session.
    server.receive_datagram(client.seal(b"still here", 2.1), ADDR, 2.1)
    assert server.receive_datagram(response, copier, 2.1) is None  # a replay by now
    assert server.address(session_id) == ADDR


def test_a_copy_that_arrives_second_is_a_replay_and_costs_nothing() -> None:
    server, client, session_id = established_pair()
    copier: Address = ("10.6.6.6", 666)
    for step in range(10):
        datagram = client.seal(b"m%d" % step, 1.0 + step)
        assert server.receive_datagram(datagram, ADDR, 1.0 + step) is not None
        assert server.receive_datagram(datagram, copier, 1.0 + step) is None
    assert server.stats.replayed == 10
    assert server.datagrams_to_send() == [] and server.address(session_id) == ADDR


def test_an_attacker_relaying_both_ways_moves_the_session_only_until_the_client_speaks() -> None:
    """The limit of path validation (docs/protocol.md 4.6): an attacker that forwards our
    challenge to the client and copies its answer is on the path; the session follows it, and
    comes back after the client's next DATA reaches the server first."""
    server, client, session_id = established_pair()
    relay: Address = ("10.6.6.6", 666)
    copy = client.seal(b"a", 1.0)
    server.receive_datagram(copy, relay, 1.0)
    [challenge] = challenges_to(server, relay)
    client.receive_datagram(challenge, 1.0)
    [response] = client.datagrams_to_send()
    server.receive_datagram(response, relay, 1.0)
    assert server.address(session_id) == relay
    # The client's next DATA from its own address: challenged there, answered, moved back.
    server.receive_datagram(client.seal(b"b", 1.5), ADDR, 1.5)
    [challenge] = challenges_to(server, ADDR)
    client.receive_datagram(challenge, 1.5)
    [response] = client.datagrams_to_send()
    server.receive_datagram(response, ADDR, 1.5)
    assert server.address(session_id) == ADDR and server.stats.migrations == 2


@pytest.mark.parametrize("interval", [0.0, 0.2])
def test_an_unvalidated_address_gets_at_most_three_times_what_it_sent(interval: float) -> None:
    """The reflection of the issue: a client with keys sends DATA "from" a victim (a LOGIN with a
    resume point, blind ACKs). Everything but the challenges goes to the validated address."""
    config = ChannelConfig(path_challenge_interval_s=interval)
    server, client, session_id = established_pair(config)
    victim: Address = ("192.0.2.7", 4000)
    rng = random.Random(3)
    received = sent = 0
    for step in range(300):
        now = 1.0 + step * 0.01
        datagram = client.seal(rng.randbytes(rng.choice([0, 0, 1, 8, 40, 200])), now)
        received += len(datagram)
        got = server.receive_datagram(datagram, victim, now)
        assert got is not None and got.addr == ADDR
        for _ in range(rng.randrange(4)):  # the catch-up the attacker asked for
            assert server.seal(session_id, bytes(1000), now)[1] == ADDR
        sent += sum(len(d) for d, to in server.datagrams_to_send() if to[0] == victim[0])
        assert sent <= 3 * received
    assert server.stats.path_challenges_sent > 0 and server.address(session_id) == ADDR
    host = server._addresses.get(victim[0])  # white box: nor does the victim's host get exempted
    assert host is None or not host.validated


def test_login_from_another_address_than_the_handshake_is_validated_too() -> None:
    server, client = new_server(), new_client()
    client.start(0.0)
    pump(server, client, ADDR, 0.0)
    session_id = client.session_id or b""
    other: Address = ("192.0.2.7", 4000)
    got = server.receive_datagram(client.seal(b"LOGIN", 0.1), other, 0.1)
    assert got == ChannelData(session_id, ADDR, b"LOGIN")  # the handshake address is validated
    assert server.is_open(session_id) and len(challenges_to(server, other)) == 1


def test_pending_paths_per_session_are_bounded() -> None:
    server, client, session_id = established_pair(ChannelConfig(max_pending_paths=2))
    for port in range(5):
        server.receive_datagram(client.seal(b"x", 1.0), ("10.0.0.1", port + 1), 1.0)
    assert len(server._sessions[session_id].paths or {}) == 2  # white box: the newest two


def test_an_old_client_that_cannot_answer_keeps_its_session_where_it_was() -> None:
    server, client, session_id = established_pair()
    moved: Address = ("127.0.0.1", 60001)
    server.receive_datagram(client.seal(b"moved", 1.0), moved, 1.0)
    server.datagrams_to_send()  # the challenge is dropped by a client that does not know it
    assert server.seal(session_id, b"x", 1.1)[1] == ADDR
    # Its re-handshake from the new address is a new session, validated by that handshake.
    client.start(7.0)
    pump(server, client, moved, 7.0)
    new_sid = client.session_id or b""
    assert new_sid != session_id
    assert server.receive_datagram(client.seal(b"LOGIN", 7.1), moved, 7.1) == ChannelData(
        new_sid, moved, b"LOGIN"
    )


_path_settings = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_path_settings
@given(data=st.data())
def test_any_bit_flip_in_a_path_datagram_is_dropped(data: st.DataObject) -> None:
    server, client, session_id = established_pair()
    moved: Address = ("127.0.0.1", 60002)
    server.receive_datagram(client.seal(b"x", 1.0), moved, 1.0)
    [challenge] = challenges_to(server, moved)
    flip = data.draw(st.integers(0, len(challenge) * 8 - 1))
    bad = bytearray(challenge)
    bad[flip // 8] ^= 1 << (flip % 8)
    assert client.receive_datagram(bytes(bad), 1.0) is None and client.datagrams_to_send() == []
    client.receive_datagram(challenge, 1.0)
    [response] = client.datagrams_to_send()
    flip = data.draw(st.integers(0, len(response) * 8 - 1))
    bad = bytearray(response)
    bad[flip // 8] ^= 1 << (flip % 8)
    assert server.receive_datagram(bytes(bad), moved, 1.0) is None
    assert server.address(session_id) == ADDR
    server.datagrams_to_send()
    assert server.receive_datagram(response, moved, 1.0) is None
    assert server.address(session_id) == moved


@_path_settings
@given(tail=st.lists(st.binary(min_size=0, max_size=60), max_size=6), kind=st.sampled_from([6, 7]))
def test_path_datagrams_with_the_right_session_id_and_junk_never_raise(tail: list[bytes], kind: int) -> None:
    server, client, session_id = established_pair()
    other: Address = ("10.0.0.9", 9)
    for rest in tail:
        datagram = b"LC\x01" + bytes([kind]) + session_id + rest
        assert server.receive_datagram(datagram, other, 1.0) is None
        assert client.receive_datagram(datagram, 1.0) is None
    assert client.datagrams_to_send() == [] and server.address(session_id) == ADDR
    assert server.receive_datagram(client.seal(b"alive", 1.0), ADDR, 1.0) is not None


# -- sessions before login ------------------------------------------------------------------------


def test_a_session_that_never_logs_in_expires_however_often_it_pings() -> None:
    server, client, session_id = established_pair()  # WELCOME at 0.0
    for step in range(1, 10):
        assert server.receive_datagram(client.seal(b"PING", float(step)), ADDR, float(step))
        server.handle_timer(float(step))
    assert server.expired_sessions() == [] and server.next_timer() == 10.0
    server.handle_timer(10.0)
    assert not server.is_open(session_id) and server.expired_sessions() == [session_id]
    assert server.expired_sessions() == [] and server.stats.prelogin_expired == 1
    assert server.receive_datagram(client.seal(b"PING", 10.5), ADDR, 10.5) is None
    [(reset, _)] = server.datagrams_to_send()
    assert reset[3] == DatagramKind.RESET


def test_a_logged_in_session_does_not_expire() -> None:
    server, _, session_id = established_pair()
    server.mark_authenticated(session_id)
    server.mark_authenticated(b"unknown!")  # ignored
    assert server.next_timer() is None
    server.handle_timer(100.0)
    assert server.is_open(session_id) and server.expired_sessions() == []


def test_sessions_without_login_are_bounded_per_host() -> None:
    server = new_server(ChannelConfig(max_prelogin_per_host=3))
    sids = [connect(server, new_client(seed=500 + i), ("192.0.2.1", 1000 + i)) for i in range(3)]
    late = new_client(seed=600)
    late.start(0.0)
    pump(server, late, ("192.0.2.1", 2000))
    assert not late.established and server.stats.prelogin_limited == 1  # no WELCOME for its HELLO
    connect(server, new_client(seed=601), ("192.0.2.2", 1000))  # another host is not affected
    server.mark_authenticated(sids[0])  # one logs in: room for one more
    connect(server, new_client(seed=602), ("192.0.2.1", 3000))
    # Half-open sessions do not count (a spoofer could fill them), but confirming beyond the bound
    # forgets the session: its client gets a RESET next and starts over.
    server.close(sids[1])
    racing = [new_client(seed=700 + i) for i in range(2)]
    for index, racer in enumerate(racing):
        racer.start(0.0)
        pump(server, racer, ("192.0.2.1", 4000 + index))
        assert racer.established
    ok, refused = (server.receive_datagram(r.seal(b"LOGIN", 0.1), ("192.0.2.1", 4000 + i), 0.1)
                   for i, r in enumerate(racing))  # fmt: skip
    assert ok is not None and refused is None and server.stats.prelogin_limited == 2
    assert not server.is_open(racing[1].session_id or b"")


# -- rekeying -------------------------------------------------------------------------------------


def test_rekey_after_n_messages_with_epochs() -> None:
    config = ChannelConfig(rekey_after_messages=3)
    server, client, session_id = established_pair(config)  # the confirm DATA was message 0
    ups = [client.seal(bytes([i]), 1.0) for i in range(8)]
    assert [d[12] for d in ups] == [0, 0, 1, 1, 1, 2, 2, 2]
    assert [int.from_bytes(d[13:21], "big") for d in ups] == list(range(1, 9))  # never resets
    for index, datagram in enumerate(ups):
        got = server.receive_datagram(datagram, ADDR, 1.0)
        assert got is not None and got.payload == bytes([index])
    downs = [server.seal(session_id, bytes([i]), 1.0)[0] for i in range(7)]
    assert [d[12] for d in downs] == [0, 0, 0, 1, 1, 1, 2]
    assert [client.receive_datagram(d, 1.0) for d in downs] == [bytes([i]) for i in range(7)]


def test_rekey_stragglers_within_grace_and_after() -> None:
    config = ChannelConfig(rekey_after_messages=2, rekey_grace_s=10.0)
    server, client, _ = established_pair(config)
    a, b, c = (client.seal(x, 1.0) for x in (b"a", b"b", b"c"))
    assert (a[12], b[12], c[12]) == (0, 1, 1)
    assert server.receive_datagram(b, ADDR, 1.0) is not None  # moves the receiver to epoch 1
    assert server.receive_datagram(a, ADDR, 2.0) is not None  # previous key, within grace
    d, e = client.seal(b"d", 3.0), client.seal(b"e", 3.0)  # epochs 2, 2
    assert server.receive_datagram(e, ADDR, 3.0) is not None  # epoch 2 now, epoch 1 is previous
    assert server.receive_datagram(c, ADDR, 20.0) is None  # epoch 1 straggler after the grace
    assert server.stats.bad_epoch == 1
    assert server.receive_datagram(d, ADDR, 20.0) is not None


def test_epochs_wrap_mod_256_and_lost_epochs_are_skipped() -> None:
    config = ChannelConfig(rekey_after_messages=1)
    server, client, _ = established_pair(config)
    for index in range(300):
        datagram = client.seal(b"m", 1.0)
        assert datagram[12] == (index + 1) % 256
        if index % 4 == 3:
            continue  # lose some: the receiver must jump ahead more than one epoch
        assert server.receive_datagram(datagram, ADDR, 1.0) is not None


def test_rekey_after_time() -> None:
    config = ChannelConfig(rekey_after_s=60.0)
    server, client, _ = established_pair(config)
    assert client.seal(b"x", 59.0)[12] == 0
    late = client.seal(b"y", 61.0)
    assert late[12] == 1
    assert server.receive_datagram(late, ADDR, 61.0) is not None


def test_far_future_epoch_is_dropped() -> None:
    config = ChannelConfig(rekey_after_messages=1)
    server, client, _ = established_pair(config)
    datagrams = [client.seal(b"m", 1.0) for _ in range(10)]
    assert server.receive_datagram(datagrams[-1], ADDR, 1.0) is None  # 10 epochs ahead
    assert server.stats.bad_epoch == 1


# -- replay window model --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.integers(0, 5000), max_size=300))
def test_replay_window_matches_a_set_model(counters: list[int]) -> None:
    window, seen, top = ReplayWindow(), set(), -1
    for counter in counters:
        expected_ok = counter not in seen and (counter > top or top - counter < REPLAY_WINDOW_SIZE)
        try:
            window.check(counter)
            ok = True
        except Exception:
            ok = False
        assert ok == expected_ok
        if ok:
            window.mark(counter)
            seen.add(counter)
            top = max(top, counter)


def test_idle_sessions_give_back_their_cipher_contexts_and_still_work() -> None:
    """A server frees the AEAD contexts of idle sessions (most of their memory) beyond a few it keeps,
    holds at most `max_cipher_sessions` at once, and rebuilds one on the session's next datagram."""
    cfg = ChannelConfig(cipher_keep_sessions=4, cipher_idle_s=0.5, max_cipher_sessions=10)
    server = new_server(cfg)
    pairs = []
    for i in range(20):
        client = new_client(seed=100 + i)
        addr = ("127.0.0.1", 40000 + i)
        pairs.append((client, addr, connect(server, client, addr=addr, now=0.0)))
        server.mark_authenticated(pairs[-1][2])
    assert len(server._hot) <= 10
    for client, addr, sid in pairs:  # everybody talks at t=1
        got = server.receive_datagram(client.seal(b"hi", 1.0), addr, 1.0)
        assert got is not None and got.payload == b"hi"
        server.seal(sid, b"yo", 1.0)
    assert len(server._hot) == 10
    deadline = server.next_timer()
    assert deadline is not None
    server.handle_timer(deadline)
    assert len(server._hot) == 4
    assert server.next_timer() is None  # a small, idle server never wakes up for this
    client, addr, sid = pairs[0]  # its contexts were freed: both directions still work
    got = server.receive_datagram(client.seal(b"again", 5.0), addr, 5.0)
    assert got is not None and got.payload == b"again"
    datagram, _ = server.seal(sid, b"back", 5.0)
    assert client.receive_datagram(datagram, 5.0) == b"back"
    server.close(sid)
    assert sid not in server._hot
