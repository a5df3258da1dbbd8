"""Signal handling that works on every event loop: shared by the server and client shells.

`loop.add_signal_handler` is POSIX-only: Windows' proactor loop (and any loop without it) raises
NotImplementedError. There the handler is installed with `signal.signal` instead and hands the signal
to the loop with `call_soon_threadsafe`, so the callback still runs on the loop, as it would on POSIX.
Signals a platform does not have (SIGHUP on Windows) are left out by name rather than failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any


def signals_named(*names: str) -> list[signal.Signals]:
    """The signals among `names` that this platform has (Windows has no SIGHUP, POSIX no SIGBREAK)."""
    found: list[signal.Signals] = []
    for name in names:
        sig = getattr(signal, name, None)
        if sig is not None:
            found.append(signal.Signals(sig))
    return found


def install(
    loop: asyncio.AbstractEventLoop, signals: list[signal.Signals], callback: Callable[[int], None]
) -> Callable[[], None]:
    """Call `callback(signum)` on `loop` when one of `signals` arrives. Returns an undo function.

    Uses the loop's own signal support where it exists; otherwise `signal.signal` (which only works
    from the main thread: elsewhere the signal keeps its previous handler, as nothing better exists).
    """
    undo: list[Callable[[], None]] = []
    for sig in signals:
        try:
            loop.add_signal_handler(sig, callback, int(sig))
        except NotImplementedError:
            _install_plain(loop, sig, callback, undo)
        except (RuntimeError, ValueError, OSError):
            continue  # not the main thread, or a signal the OS will not let us catch
        else:
            undo.append(functools.partial(_remove_loop_handler, loop, sig))

    def restore() -> None:
        for step in reversed(undo):
            step()
        undo.clear()

    return restore


def _install_plain(
    loop: asyncio.AbstractEventLoop,
    sig: signal.Signals,
    callback: Callable[[int], None],
    undo: list[Callable[[], None]],
) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing left to stop
            loop.call_soon_threadsafe(callback, signum)

    try:
        previous: Any = signal.signal(sig, handler)
    except (ValueError, OSError):
        return  # not the main thread, or not catchable here
    undo.append(functools.partial(_restore_plain, sig, previous))


def _restore_plain(sig: signal.Signals, previous: Any) -> None:
    with contextlib.suppress(ValueError, OSError, TypeError):
        signal.signal(sig, previous if previous is not None else signal.SIG_DFL)


def _remove_loop_handler(loop: asyncio.AbstractEventLoop, sig: signal.Signals) -> None:
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        if not loop.is_closed():
            loop.remove_signal_handler(sig)


def die_with_parent() -> None:
    """In a child process (before it runs, or first thing): on Linux, have the kernel kill it if its
    parent dies, so that `kill -9` of a parent leaves nothing behind (a relay unsupervised on the
    port, a browser tab's app holding its socket). SIGKILL, not SIGTERM: the child's goodbye would
    need pipes that died with the parent, and what it holds is safe without one (a relay loses
    nothing confirmed; a tab's user times out as after a crash). Elsewhere it does nothing."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
