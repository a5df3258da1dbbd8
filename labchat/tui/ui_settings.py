"""The app's own settings that outlive a run (today: the chosen theme), in a small JSON file.

A missing, unreadable or corrupt file means defaults, never an error at start: these are
preferences, and losing one is better than refusing to start. Writes are atomic (a temporary file
renamed over the old one), so a crash mid-write leaves the previous settings.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


class UiSettings:
    """Read once at start, written on each change. `path` None keeps everything in memory."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._data: dict[str, Any] = {}
        if path is not None:
            with contextlib.suppress(OSError, ValueError):
                loaded = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self._data = loaded

    @property
    def theme(self) -> str | None:
        value = self._data.get("theme")
        return value if isinstance(value, str) else None

    @theme.setter
    def theme(self, name: str) -> None:
        if self._data.get("theme") != name:
            self._data["theme"] = name
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self._data, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
