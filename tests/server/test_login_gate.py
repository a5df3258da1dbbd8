"""The login gate without sockets or threads: a fake clock, checks that "run" when the test says."""

from __future__ import annotations

from labchat.protocol import messages as m
from labchat.server.accounts import LoginGate, LoginPolicy, PasswordCheck, RegistrationLimit

RECORD = (b"s" * 16, b"h" * 32, 2**10, 8, 1)
T0 = 1_700_000_000.0


def _check(user: str, sid: int, record: tuple[bytes, bytes, int, int, int] | None = RECORD) -> PasswordCheck:
    return PasswordCheck(sid.to_bytes(8, "big"), m.Login(user, "guess"), record, 2**10)


def _guess_storm(gate: LoginGate, hosts: list[str], seconds: float, user: str = "alice") -> tuple[int, int]:
    """All guesses arrive at T0; every check fails 50 ms after it starts. Returns (checks, refused)."""
    refused = 0
    for i, host in enumerate(hosts):
        if gate.admit(_check(user, i), host, T0) is not None:
            refused += 1
    now, running = T0, []
    while now < T0 + seconds:
        for check in running:
            check.ok = False
            gate.finished(check, now)
        running = gate.start_ready(now)
        now += 0.05
    return gate.started, refused


def test_150_simultaneous_guesses_from_one_address_get_only_the_budget() -> None:
    gate = LoginGate(LoginPolicy(parallel_checks=8))
    checks, refused = _guess_storm(gate, ["10.0.0.9"] * 150, 60.0)
    # 5 at once, then one per 10 s: never the 150 (nor the 120 that reached the password before).
    assert checks <= 5 + 6 + 1
    assert refused >= 140


def test_150_simultaneous_guesses_from_150_addresses_are_bounded_by_the_name() -> None:
    gate = LoginGate(LoginPolicy(parallel_checks=8))
    checks, _ = _guess_storm(gate, [f"10.0.1.{i}" for i in range(150)], 60.0)
    assert checks <= 5 + 6 + 1


def test_guessing_many_names_from_one_address_is_bounded_by_the_address() -> None:
    gate = LoginGate(LoginPolicy(parallel_checks=8))
    for i in range(100):
        gate.admit(_check(f"user{i}", i), "10.0.0.9", T0)
    now, running = T0, []
    while now < T0 + 60:
        for check in running:
            gate.finished(check, now)  # ok stays False: wrong
        running = gate.start_ready(now)
        now += 0.05
    assert gate.started <= 10 + 10 + 1  # burst 10, then one per 6 s


def test_checks_in_flight_count_before_any_result() -> None:
    """The race of the issue: nothing has failed yet, and still no sixth check starts."""
    gate = LoginGate(LoginPolicy(parallel_checks=100))
    for i in range(20):
        gate.admit(_check("alice", i), "10.0.0.9", T0)
    assert len(gate.start_ready(T0)) == 5
    assert gate.start_ready(T0 + 1) == []


def test_a_blocked_guesser_does_not_delay_anyone_else() -> None:
    gate = LoginGate(LoginPolicy(parallel_checks=2))
    for i in range(8):
        gate.admit(_check("alice", i), "10.0.0.9", T0)
    first = gate.start_ready(T0)
    for check in first:
        gate.finished(check, T0 + 0.05)
    for check in gate.start_ready(T0 + 0.05):
        gate.finished(check, T0 + 0.1)
    gate.start_ready(T0 + 0.1)
    for check in list(gate.waiting):
        assert check.login.user == "alice"
    bob = _check("bob", 99)
    assert gate.admit(bob, "10.0.0.20", T0 + 0.2) is None
    while gate.running:
        gate.finished(_check("x", 0, None), T0 + 0.2)  # free the workers
    assert bob in gate.start_ready(T0 + 0.2)


def test_the_owner_is_not_kept_out_from_an_address_that_logged_in_before() -> None:
    gate = LoginGate(LoginPolicy(parallel_checks=8))
    gate.succeeded("alice", "10.0.0.5", T0)
    _guess_storm(gate, ["10.0.0.9"] * 50, 5.0)
    owner = _check("Alice", 500)
    assert gate.admit(owner, "10.0.0.5", T0 + 5) is None
    assert owner in gate.start_ready(T0 + 5)


def test_refusal_says_why_and_for_how_long() -> None:
    gate = LoginGate()
    refusals = [gate.admit(_check("alice", i), "10.0.0.9", T0) for i in range(20)]
    refused = [r for r in refusals if r is not None]
    assert refused and all(r.reason == "name" and r.wait_s > 30 for r in refused)


def test_registrations_are_not_charged_to_the_throttle_but_still_queue() -> None:
    gate = LoginGate(LoginPolicy(parallel_checks=2))
    for i in range(50):
        assert gate.admit(_check(f"new{i}", i, None), "10.0.0.9", T0) is None
    assert len(gate.start_ready(T0)) == 2
    assert gate.position(gate.waiting[10]) == 10
    assert gate.eta_s(10) > gate.eta_s(0)


def test_queue_is_bounded() -> None:
    gate = LoginGate(LoginPolicy(max_queued=3, parallel_checks=1))
    results = [gate.admit(_check(f"new{i}", i, None), "10.0.0.9", T0) for i in range(5)]
    assert results[:3] == [None] * 3
    assert results[3] is not None and results[3].reason == "busy" and results[3].wait_s >= 1


def test_cancel_gives_back_the_charge() -> None:
    gate = LoginGate(LoginPolicy(parallel_checks=1))
    for i in range(7):
        gate.admit(_check("alice", i), "10.0.0.9", T0)
    gate.cancel((3).to_bytes(8, "big"))
    assert len(gate.waiting) == 6


def test_next_timer_wakes_when_a_budget_refills_and_never_spins() -> None:
    gate = LoginGate(LoginPolicy(parallel_checks=8))
    for i in range(7):
        gate.admit(_check("alice", i), "10.0.0.9", T0)
    for check in gate.start_ready(T0):
        gate.finished(check, T0 + 0.05)
    deadline = gate.next_timer()
    assert deadline is not None and deadline > T0 + 1
    started = gate.start_ready(deadline)
    assert len(started) == 1


def test_registrations_per_hour() -> None:
    limit = RegistrationLimit(3)
    assert [limit.take("10.0.0.9", T0) for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    assert limit.take("10.0.0.9", T0) > 0
    assert limit.take("10.0.0.10", T0) == 0.0
    assert limit.take("10.0.0.9", T0 + 1200) == 0.0  # one more every 20 minutes
    assert RegistrationLimit(0).take("10.0.0.9", T0) == 0.0
