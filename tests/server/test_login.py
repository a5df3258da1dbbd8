"""Logins on the simulated network: the queue, tickets, the registration bound, NO_REGISTER, and a
re-connecting user who is throttled but not thrown out. A fake clock throughout."""

from __future__ import annotations

import heapq
from dataclasses import replace
from pathlib import Path

from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.client import ClientConfig
from labchat.protocol.errors import ErrorCode
from labchat.protocol.wire import encode_message
from labchat.server.accounts import LoginPolicy, PasswordCheck
from labchat.server.relay import RelayConfig

from ..protocol.sim import SimNet, fast_config
from .test_relay import RawPeer


class SlowScryptNet(SimNet):
    """A SimNet whose password checks take `check_s` of simulated time each, as scrypt does."""

    def __init__(self, tmp_path: Path, check_s: float, **kw: object) -> None:
        self.check_s = check_s
        self._running: list[tuple[float, int, PasswordCheck]] = []
        self._tie = 0
        super().__init__(tmp_path, **kw)  # type: ignore[arg-type]

    def _flush(self) -> None:
        relay = self.relay
        if relay is not None:
            while self._running and self._running[0][0] <= self.now:
                _, _, check = heapq.heappop(self._running)
                relay.complete_login(check.run(), self.now)
            for check in relay.password_checks():
                self._tie += 1
                heapq.heappush(self._running, (self.now + self.check_s, self._tie, check))
        super()._flush()

    def _next_time(self) -> float | None:
        times = [t for t in (super()._next_time(),) if t is not None]
        if self._running:
            times.append(self._running[0][0])
        return min(times) if times else None


def test_a_class_logging_in_at_once_waits_in_the_queue_and_gets_in(tmp_path: Path) -> None:
    """60 logins at once, 0.4 s of scrypt each on 2 workers: 12 s of work against a 2 s connect
    deadline and the channel's 10 s limit on sessions that have not logged in. Every client hears
    its place and keeps waiting; all get in, none gives up, no waiting session is forgotten."""
    net = SlowScryptNet(tmp_path, 0.4)
    config = fast_config(connect_timeout_s=2.0)
    started = net.now
    clients = [net.add_client(f"s{i:02d}", "secret", config=config) for i in range(60)]
    net.run_until(lambda: all(c.of(ev.LoggedIn) for c in clients), limit_s=30)
    assert not any(c.of(ev.ConnectFailed) for c in clients)
    assert net.relay is not None and net.relay.channel.stats.prelogin_expired == 0
    assert net.now - started > 11
    last = clients[-1].of(ev.LoginQueued)
    assert last and last[0].position >= 40
    assert max(q.eta_s for q in last) > 2  # once checks have been timed, the estimate is honest
    positions = [q.position for q in last]
    assert positions == sorted(positions, reverse=True)  # the place only ever improves


def test_without_the_queue_notice_a_slow_server_is_given_up_on(tmp_path: Path) -> None:
    """The control for the test above: a login that hears nothing still times out."""
    net = SlowScryptNet(tmp_path, 10.0)
    c = net.add_client("ana", "secret", config=fast_config(connect_timeout_s=2.0))
    net.run_until(lambda: bool(c.of(ev.ConnectFailed)), limit_s=5)


def test_no_register_gets_no_such_account_and_creates_nothing(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    typo = net.add_client("hunter2pass", "secret", register=False)
    net.run_until(lambda: bool(typo.of(ev.LoginRefused)))
    refused = typo.of(ev.LoginRefused)[0]
    assert refused.code == ErrorCode.NO_SUCH_ACCOUNT and "hunter2pass" in refused.reason
    assert net.relay is not None and net.relay.store.get_account("hunter2pass") is None
    again = net.add_client("hunter2pass", "secret")  # the user said yes: create it
    net.run_until(lambda: bool(again.of(ev.LoggedIn)))
    assert again.of(ev.LoggedIn)[0].registered
    known = net.add_client("hunter2pass", "secret", register=False)  # an existing account: fine
    net.run_until(lambda: bool(known.of(ev.LoggedIn)))


def test_registration_flood_from_one_address_stops_at_the_limit(tmp_path: Path) -> None:
    policy = LoginPolicy(registrations_per_hour=5)
    net = SimNet(tmp_path, relay_config=replace(RelayConfig(), login=policy))
    flood = [net.add_client(f"bot{i}", "secret", host="10.0.9.9", port=6000 + i) for i in range(12)]
    net.run_until(lambda: all(c.of(ev.LoggedIn) or c.of(ev.LoginRefused) for c in flood), limit_s=20)
    assert sum(bool(c.of(ev.LoggedIn)) for c in flood) == 5
    refusals = [c.of(ev.LoginRefused)[0] for c in flood if c.of(ev.LoginRefused)]
    assert len(refusals) == 7
    assert all(r.code == ErrorCode.REGISTRATION_LIMITED for r in refusals)
    assert "too many new accounts from your address: try again in 12 min" in refusals[0].reason
    others = [net.add_client(f"student{i}", "secret") for i in range(5)]  # other addresses
    net.run_until(lambda: all(c.of(ev.LoggedIn) for c in others))
    old = net.add_client("bot0", "secret", host="10.0.9.9", port=7000)  # existing account: fine
    net.run_until(lambda: bool(old.of(ev.LoggedIn)))


def test_a_restarted_server_resumes_with_the_ticket_without_scrypt(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    ana = net.add_client("ana", "secret", config=fast_config(rehandshake_s=1.0))
    net.run_until(lambda: net.logged_in("ana"))
    net.crash_relay()
    net.start_relay()
    assert net.relay is not None
    net.run_until(lambda: len(ana.of(ev.LoggedIn)) == 2, limit_s=20)
    assert ana.of(ev.LoggedIn)[1].resumed
    assert net.relay.stats.ticket_logins == 1 and net.relay.stats.password_checks == 0


def test_without_the_ticket_key_a_restart_costs_a_password_check(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    net.ticket_key = None
    ana = net.add_client("ana", "secret", config=fast_config(rehandshake_s=1.0))
    net.run_until(lambda: net.logged_in("ana"))
    net.crash_relay()
    net.start_relay()
    assert net.relay is not None
    net.run_until(lambda: len(ana.of(ev.LoggedIn)) == 2, limit_s=20)
    assert net.relay.stats.ticket_logins == 0 and net.relay.stats.password_checks == 1


def test_a_reconnecting_user_who_is_throttled_keeps_trying_and_gets_back_in(tmp_path: Path) -> None:
    """The lockout of the issue, with the ticket out of play (a new ticket key, as if the file
    were lost): somebody exhausts ana's budget while her client re-connects. It says it will retry,
    does, and never closes."""
    net = SimNet(tmp_path)
    config = fast_config(rehandshake_s=1.0)
    ana = net.add_client("ana", "secret", config=config)
    net.run_until(lambda: net.logged_in("ana"))
    net.crash_relay()
    net.ticket_key = bytes(32)
    net.start_relay()
    ana.online = False  # ana's path is down while the guessing happens
    wrongs = [net.add_client("ana", "wrong", config=config) for _ in range(10)]
    net.run_until(lambda: sum(bool(w.of(ev.LoginRefused)) for w in wrongs) >= 5, limit_s=5)
    ana.online = True
    net.run_until(lambda: len(ana.of(ev.LoggedIn)) == 2, limit_s=120)
    retries = ana.of(ev.LoginRetrying)
    assert retries and retries[0].code == ErrorCode.LOGIN_THROTTLED and retries[0].retry_in_s >= 1
    assert not ana.of(ev.Closed) and not ana.of(ev.LoginRefused)


def test_the_owner_logs_in_from_her_own_address_while_her_name_is_guessed(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    first = net.add_client("ana", "secret", host="10.0.5.5", port=5000)
    net.run_until(lambda: bool(first.of(ev.LoggedIn)))
    wrongs = [net.add_client("ana", "wrong", host="10.0.6.6", port=6000 + i) for i in range(20)]
    net.run_until(lambda: sum(bool(w.of(ev.LoginRefused)) for w in wrongs) >= 10, limit_s=5)
    again = net.add_client("ana", "secret", host="10.0.5.5", port=5001, config=ClientConfig())
    net.run_until(lambda: bool(again.of(ev.LoggedIn)), limit_s=5)


def test_a_first_version_client_still_registers_and_logs_in(tmp_path: Path) -> None:
    """A LOGIN that ends after resume_seq (no flags, no ticket) means what it always meant; the new
    TICKET is an extra frame such a client acknowledges and ignores."""
    net = SimNet(tmp_path)
    peer = RawPeer(net, ("10.7.7.7", 700))
    peer.pump()
    full = encode_message(m.Login("oldtimer", "secret", "lobby", 0))
    peer.link.send(m.Kind.LOGIN, full[: -(4 + 2 + 2 + 2)])  # no flags, ticket, cursors, seat
    peer.pump()
    kinds = [type(msg) for msg in peer.messages]
    assert kinds[:2] == [m.LoginOk, m.Ticket]
    login_ok = peer.messages[0]
    assert isinstance(login_ok, m.LoginOk) and login_ok.registered == 1


def test_a_refused_session_is_ended_and_cannot_be_parked(tmp_path: Path) -> None:
    """A LOGIN admitted to a check lifts the channel's pre-login limits; if it fails, the session
    ends, so that wrong guesses plus PINGs cannot keep sessions alive past the channel's bounds."""
    net = SimNet(tmp_path)
    owner = net.add_client("ana", "secret")
    net.run_until(lambda: net.logged_in("ana"))
    peer = RawPeer(net, ("10.7.7.8", 701))
    peer.pump()
    peer.link.send(m.Kind.LOGIN, encode_message(m.Login("ana", "wrong")))
    peer.pump()
    assert [type(x) for x in peer.messages] == [m.LoginFailed]
    assert net.relay is not None and len(net.relay.sessions) == 2
    for _ in range(5):
        peer.link.send(m.Kind.PING, b"")
        peer.pump()
        net.run_for(1.0)
    assert len(net.relay.sessions) == 1  # only the owner's
    assert owner.conn.state is ev.ConnectionState.CONNECTED
