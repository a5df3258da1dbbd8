"""The shells' one timer: follows the core's deadline, kept rather than moved later, re-armed after."""

from __future__ import annotations

import asyncio

from labchat.deadline_timer import DeadlineTimer


async def test_fires_at_the_deadline_and_a_later_one_keeps_the_early_timer() -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    done = asyncio.Event()

    def on_fire() -> None:
        fired.append(loop.time())
        done.set()

    timer = DeadlineTimer(loop, on_fire)
    start = loop.time()
    timer.set(100.02, now=100.0)  # 20 ms from now, in the core's clock
    timer.set(100.5, now=100.0)  # later: the 20 ms timer is kept and fires early
    await asyncio.wait_for(done.wait(), 2)
    assert 0.015 <= fired[0] - start < 0.4


async def test_an_earlier_deadline_moves_the_timer_and_none_disarms_it() -> None:
    loop = asyncio.get_running_loop()
    fired = asyncio.Event()
    timer = DeadlineTimer(loop, fired.set)
    start = loop.time()
    timer.set(10.0, now=0.0)
    timer.set(0.0, now=0.0)  # already due: runs on the next loop pass
    await asyncio.wait_for(fired.wait(), 2)
    assert loop.time() - start < 1
    fired.clear()
    timer.set(0.01, now=0.0)
    timer.set(None, now=0.0)
    await asyncio.sleep(0.05)  # bounded: nothing may fire after the timer is disarmed
    assert not fired.is_set()
