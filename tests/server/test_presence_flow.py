"""JOINED/LEFT one by one in a calm room, one PRESENCE refresh per interval during a login flood."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from labchat.protocol import events as ev
from labchat.server.room import MembershipFlow, refresh_interval

from ..protocol.sim import SimNet


def test_flow_announces_a_burst_then_coalesces_then_recovers_when_calm() -> None:
    flow = MembershipFlow(events_per_s=5.0, burst=20)
    t = 100.0
    assert all(flow.announce_individually(t, 300) for _ in range(20))  # a class arriving together
    assert not flow.announce_individually(t, 300)
    assert flow.refresh_at == t + refresh_interval(300) == t + 2.0  # 8 parts at 4 parts/s
    for i in range(100):  # the flood goes on: all wait for the refresh
        assert not flow.announce_individually(t + i * 0.01, 300)
    assert flow.refreshed() == 101 and flow.refresh_at is None
    # Still flooding right after a refresh: no individual announcements in between.
    assert not flow.announce_individually(t + 1.5, 300)
    flow.refreshed()
    # Calm for a while: one by one again.
    assert flow.announce_individually(t + 10.0, 300)


def test_refresh_interval_grows_with_the_room() -> None:
    assert refresh_interval(0) == refresh_interval(40) == 1.0
    assert refresh_interval(300) == 2.0
    assert refresh_interval(900) == 23 / 4


def test_login_flood_reaches_members_as_presence_refreshes_and_lists_stay_right(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    members = [f"m{i}" for i in range(5)]
    for name in members:
        net.add_client(name)
    net.run_until(lambda: net.logged_in(*members))
    watcher = net.clients["m0"]
    joined_before = len(watcher.of(ev.UserJoined))
    bots = [f"bot{i}" for i in range(60)]
    for name in bots:
        net.add_client(name)
    net.run_until(lambda: net.logged_in(*bots))
    net.run_for(3.0)  # the pending refresh goes out
    expected = sorted(members + bots, key=str.casefold)
    joined = len(watcher.of(ev.UserJoined)) - joined_before
    assert joined <= 20  # the burst, one by one; the other 40+ came as member lists
    lists = watcher.of(ev.PresenceUpdated)
    assert list(lists[-1].users) == expected and not lists[-1].requested
    assert len(lists) <= 1 + 60 // 5  # bounded by time, not by the number of logins
    for name in bots:  # every joiner has the whole list too
        assert list(net.clients[name].of(ev.PresenceUpdated)[-1].users) == expected
    # The bots vanish together (they time out together): members see the list shrink, again
    # without 60 LEFTs each.
    for name in bots:
        net.clients[name].online = False
    net.run_for(45.0)
    assert list(watcher.of(ev.PresenceUpdated)[-1].users) == members
    assert len(watcher.of(ev.UserLeft)) <= 20  # a burst, then member lists
    # Calm again: a single newcomer is announced on its own.
    net.add_client("late")
    net.run_until(lambda: net.logged_in("late"))
    net.run_for(1.0)
    assert watcher.of(ev.UserJoined)[-1].user == "late"


@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=300),
    members=st.integers(min_value=1, max_value=1000),
)
def test_flow_bounds_what_any_pattern_of_changes_costs(gaps: list[float], members: int) -> None:
    flow = MembershipFlow(events_per_s=5.0, burst=20)
    interval = refresh_interval(members)
    t = 1000.0
    individual = 0
    refreshes: list[float] = []
    for gap in gaps:
        t += gap
        if flow.refresh_at is not None and flow.refresh_at <= t:  # the relay's timer fires first
            refreshes.append(flow.refresh_at)
            flow.refreshed()
        if flow.announce_individually(t, members):
            individual += 1
        else:  # a coalesced change always has a refresh coming, within one interval
            assert flow.refresh_at is not None and t <= flow.refresh_at <= t + interval
    assert individual <= 20 + 5.0 * (t - 1000.0 - gaps[0]) + 1
    assert all(b - a >= interval - 1e-9 for a, b in pairwise(refreshes))


def test_a_flood_refresh_keeps_who_is_away(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    members = ["m0", "m1"]
    for name in members:
        net.add_client(name)
    net.run_until(lambda: net.logged_in(*members))
    net.clients["m1"].conn.set_away("lunch", net.now)
    net.run_for(1.0)
    bots = [f"bot{i}" for i in range(40)]
    for name in bots:
        net.add_client(name)
    net.run_until(lambda: net.logged_in(*bots))
    net.run_for(3.0)
    refreshed = net.clients["m0"].of(ev.PresenceUpdated)[-1]
    assert len(refreshed.users) == 42 and not refreshed.requested
    assert refreshed.away == {"m1": "lunch"}
