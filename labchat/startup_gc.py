"""Keep the garbage collector away from what a process builds at startup: shared by the server, the
client app and the benchmark's server.

Modules, classes, functions and the like (≈30 000 objects in the server, more in the Textual app) live
as long as the process, yet every full collection walks all of them. In the server at 1000 messages/s
they were most of each full-collection pause: 8-12 ms, and 1-3 ms once frozen (docs/performance.md).
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect once, then move every object alive now to the collector's permanent generation.

    Call it when startup is over and before the work starts. An object frozen here that later becomes
    garbage in a reference cycle is never freed: fine for what startup builds, which is why this is
    not called again later.
    """
    gc.collect()
    gc.freeze()
