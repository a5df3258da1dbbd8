"""Rooms through the simulated network (sim.py): the real relay and real clients, loss, duplication,
reordering and a server crash, with a fake clock. Each room's messages arrive exactly once, in order,
and a client comes back in every room it was in, talking where it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.server.relay import RelayConfig

from .sim import PathModel, SimClient, SimNet

pytestmark = pytest.mark.skipif(
    not RelayConfig().capabilities & m.CAP_ROOMS, reason="this relay has no rooms (protocol 18) yet"
)


def received(client: SimClient, room: str) -> list[str]:
    return [e.text for e in client.of(ev.MessageReceived) if e.room == room and not e.history]


def in_rooms(net: SimNet, client: SimClient, *rooms: str) -> None:
    for room in rooms:
        client.conn.join(room, "", net.now)
    net.run_until(lambda: set(rooms) <= set(client.conn.rooms), limit_s=60)


@pytest.mark.parametrize("seed", [3, 4])
def test_two_rooms_through_loss_and_a_crash_each_exactly_once(tmp_path: Path, seed: int) -> None:
    net = SimNet(tmp_path, seed=seed, path=PathModel(loss=0.2, duplicate=0.05, reorder=0.1))
    ana, budi = net.add_client("ana"), net.add_client("budi")
    net.run_until(lambda: net.logged_in("ana", "budi"), limit_s=60)
    in_rooms(net, ana, "cs101", "lab-b")
    in_rooms(net, budi, "cs101", "lab-b")
    assert ana.conn.current_room == "lab-b"  # the room joined last
    sent = {"cs101": [f"c{i}" for i in range(30)], "lab-b": [f"b{i}" for i in range(30)]}
    for i in range(15):
        budi.conn.say(sent["cs101"][i], net.now, room="cs101")
        budi.conn.say(sent["lab-b"][i], net.now, room="lab-b")
    net.run_until(lambda: len(budi.of(ev.MessageDelivered)) == 30, limit_s=120)
    net.crash_relay()
    for i in range(15, 30):  # typed while the server is down: kept, sent again, relayed once
        budi.conn.say(sent["cs101"][i], net.now, room="cs101")
        budi.conn.say(sent["lab-b"][i], net.now, room="lab-b")
    net.run_for(5.0)
    net.start_relay()
    net.run_until(
        lambda: len(received(ana, "cs101")) >= 30 and len(received(ana, "lab-b")) >= 30, limit_s=180
    )
    net.run_for(5.0)
    for room in ("cs101", "lab-b"):
        assert received(ana, room) == sent[room]
    assert set(ana.conn.rooms) == {"lobby", "cs101", "lab-b"} and ana.conn.current_room == "lab-b"
    logins = [e for e in ana.of(ev.LoggedIn) if e.resumed]
    assert logins and all(e.rooms for e in logins)
