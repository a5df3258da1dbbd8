"""The class password and guests (docs/protocol.md 18.11)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from labchat.protocol import messages as m
from labchat.protocol.errors import ErrorCode
from labchat.server.relay import RelayConfig

from ..protocol.sim import SimNet
from .test_rooms import Peer, modes_of


def class_net(tmp_path: Path) -> SimNet:
    net = SimNet(tmp_path, relay_config=replace(RelayConfig(), class_password="letmein"))
    assert net.relay is not None
    net.relay.store.create_account("teacher", "secret")
    return net


def test_guests_come_in_with_the_class_password_and_leave_no_trace(tmp_path: Path) -> None:
    net = class_net(tmp_path)
    teacher = Peer(net, "teacher")
    ani = Peer(net, "ani", password="letmein")
    ok = ani.last(m.LoginOk)
    assert ok.flags & m.LOGIN_OK_GUEST and ok.registered == 0 and ani.of(m.Ticket)
    assert ani.last(m.RoomState).you == m.MEMBER_GUEST and ani.last(m.RoomState).members == 2
    assert modes_of(ani.last(m.Presence)) == {"ani": m.MEMBER_GUEST, "teacher": 0}
    assert net.relay is not None and net.relay.store.get_account("ani") is None
    assert ani.request(m.JoinRoom, "cs101").code == 0
    assert ani.last(m.RoomState).you == m.MEMBER_GUEST  # a guest creating a room is not its operator
    assert teacher.request(m.JoinRoom, "quiz").code == 0
    done = teacher.request(m.Moderate, "quiz", m.Action.OP, "ani", 0, "")
    assert done.code == ErrorCode.NOT_ALLOWED and "guest" in done.text
    assert teacher.request(m.Moderate, "quiz", m.Action.INVITE, "ani", 0, "").code == 0
    assert net.relay.store.memberships_of("ani") == []


def test_wrong_class_password_name_in_use_and_no_registration(tmp_path: Path) -> None:
    net = class_net(tmp_path)
    Peer(net, "ani", password="letmein")
    twin = Peer(net, "ani", password="letmein")
    refused = twin.last(m.LoginFailed)
    assert refused.code == ErrorCode.NAME_IN_USE
    wrong = Peer(net, "budi", password="guess")
    assert (wrong.last(m.LoginFailed).code, wrong.last(m.LoginFailed).text) == (
        ErrorCode.INVALID_PASSWORD, "wrong class password"
    )
    impostor = Peer(net, "teacher", password="letmein")  # an account's name needs its own password
    assert impostor.last(m.LoginFailed).code == ErrorCode.INVALID_PASSWORD
    assert net.relay is not None and net.relay.store.get_account("budi") is None


def test_a_guest_ticket_resumes_while_the_guest_is_online(tmp_path: Path) -> None:
    net = class_net(tmp_path)
    ani = Peer(net, "ani", password="letmein")
    ticket = ani.last(m.Ticket).ticket
    again = Peer(net, "ani", password="", ticket=ticket)
    assert again.last(m.LoginOk).flags & m.LOGIN_OK_GUEST
    assert ani.last(m.Closed).code == ErrorCode.REPLACED


def test_a_guest_ticket_dies_with_the_guests_session(tmp_path: Path) -> None:
    net = class_net(tmp_path)
    ani = Peer(net, "ani", password="letmein")
    ticket = ani.last(m.Ticket).ticket
    ani.send(m.Bye())
    other = Peer(net, "ani", password="letmein")  # the name is free again: someone else takes it
    assert other.last(m.LoginOk).flags & m.LOGIN_OK_GUEST
    thief = Peer(net, "ani", password="", ticket=ticket)
    assert thief.last(m.LoginFailed).code == ErrorCode.TICKET_REJECTED
