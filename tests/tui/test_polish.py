"""Small things a user notices: names as the server spells them, an honest online list, typed times."""

from __future__ import annotations

from labchat.protocol import events as ev
from labchat.tui import messages as msg
from labchat.tui.log_entry import Delivery

from .util import enter_room, recording_app, wait_until

T0 = 1_700_000_000.0


async def test_a_private_message_names_the_recipient_as_the_server_spells_it() -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 24)) as pilot:
        await enter_room(app, pilot)
        app.room.user_list.set_users(["alice", "bob"])
        app.post_message(msg.CoreEvent(app.attempt, ev.MessageQueued(7, "lobby", "hi", to="BOB")))
        await wait_until(pilot, lambda: 7 in app.room._own)
        assert app.room._own[7].user == "bob"


async def test_a_closed_session_shows_nobody_online() -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 24)) as pilot:
        await enter_room(app, pilot)
        app.room.user_list.set_users(["alice", "bob"])
        app.post_message(msg.CoreEvent(app.attempt, ev.Closed("logged in elsewhere", 9)))
        await wait_until(pilot, lambda: app.room.user_list.users == [])
        assert "Offline" in str(app.room.user_list.query_one("#user-count").render())


async def test_a_message_queued_offline_keeps_the_time_it_was_typed() -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 24)) as pilot:
        await enter_room(app, pilot)
        app.post_message(msg.CoreEvent(app.attempt, ev.MessageQueued(7, "lobby", "typed offline")))
        await wait_until(pilot, lambda: 7 in app.room._own)
        entry = app.room._own[7]
        typed_at = entry.ts
        delivered = ev.MessageDelivered(7, "lobby", 12, typed_at + 90, "typed offline")
        app.post_message(msg.CoreEvent(app.attempt, delivered))
        await wait_until(pilot, lambda: entry.delivery is Delivery.DELIVERED)
        assert entry.ts == typed_at
