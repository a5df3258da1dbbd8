"""Startup objects go to the collector's permanent generation, so full collections skip them."""

from __future__ import annotations

import gc
import weakref

from labchat.startup_gc import freeze_startup_objects


def test_startup_objects_are_frozen_and_garbage_is_not() -> None:
    class Node:
        pass

    garbage = Node()
    garbage.self = garbage  # type: ignore[attr-defined]  # a cycle only the collector can free
    gone = weakref.ref(garbage)
    kept = Node()
    del garbage
    try:
        freeze_startup_objects()
        assert gone() is None  # collected first, not frozen forever
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # modules, classes, functions: everything alive now
        tracked = {id(o) for o in gc.get_objects()}
        assert id(kept) not in tracked  # frozen objects are out of every generation's scan
    finally:
        gc.unfreeze()  # give the rest of the test session its collector back
    assert id(kept) in {id(o) for o in gc.get_objects()}
