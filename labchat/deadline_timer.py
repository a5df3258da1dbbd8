"""One asyncio timer that follows a sans-I/O core's `next_timer()`: shared by the server and client shells.

Both shells ask their core for its next deadline after every datagram and re-arm. Doing that with a
cancel and a new `call_at` each time costs a heap entry per datagram; instead a timer due no later
than needed is kept. If the deadline moved later, the timer fires early, the core's `handle_timer`
finds nothing due (cores must allow that) and the shell re-arms. One spare wake-up now and then
instead of timer churn on every datagram.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

#: A timer already set this close after the new deadline is kept rather than moved.
SLACK_S = 1e-3


class DeadlineTimer:
    """Calls `callback` at the core's deadline. Deadlines are in the core's clock, given with `now`."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None], *, grid_s: float = 0.0
    ) -> None:
        """`grid_s`: fire only on multiples of this (loop time), late by less than one step. A
        server with a thousand sessions has a thousand unrelated deadlines (delayed ACKs, timeouts);
        on a grid, one wake-up handles all that fall in the same step, as the kernel's timer slack
        does for processes. 0: exactly on time."""
        self._loop = loop
        self._callback = callback
        self._grid_s = grid_s
        self._handle: asyncio.Handle | None = None
        self._when = 0.0  # loop time of `_handle`: uvloop's handle for a time already past has no when()

    def set(self, deadline: float | None, now: float) -> None:
        """Arm for `deadline` (core clock; `now` is the same clock now), or disarm for None."""
        if deadline is None:
            self.cancel()
            return
        when = self._loop.time() + max(0.0, deadline - now)
        if self._grid_s:
            when = math.ceil(when / self._grid_s) * self._grid_s
        if self._handle is not None:
            if self._when <= when + SLACK_S:
                return
            self._handle.cancel()
        self._handle = self._loop.call_at(when, self._fire)
        self._when = when

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._callback()
