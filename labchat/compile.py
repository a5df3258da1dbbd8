"""`python -m labchat.compile` (`make fast`): compile the protocol core and the relay with mypyc, in
place. `--clean` removes what it built; `--status` says what is in use.

Why mypyc: these modules are fully typed already (mypy strict), and mypyc turns typed Python into C
extension modules without a line of C of ours to keep in step with the Python. Python imports a
compiled module in preference to its `.py`, and falls back to the `.py` wherever there is none (a
fresh clone, a machine without a C compiler), so the compiled build is an option, never a requirement.
What it buys is in docs/performance.md (item 17 and the compiled table under "Results").

A compiled module does not follow later edits of its source. The build records a hash of each source
it compiled; `status()` reports a compiled module whose source has changed since as stale, and the
benchmark prints that.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
#: The hot path of every delivery, in both directions. Left out: noise.py (the handshake, once per
#: session; its `copy()` builds objects in a way compiled classes do not allow), messages.py
#: (dataclasses with class-level constants, which mypyc does not compile yet), events.py (compiles,
#: but measured no faster), client/core.py (mypyc does not compile async generators).
MODULES = (
    "protocol/wire.py",
    "protocol/reliability.py",
    "protocol/congestion.py",
    "protocol/channel_common.py",
    "protocol/channel_client.py",
    "protocol/channel_server.py",
    "protocol/client.py",
    "protocol/text.py",
    "protocol/errors.py",
    "server/relay.py",
    "server/room.py",
)
MANIFEST = PACKAGE / "_compiled.json"
#: The module mypyc puts the code shared by all compiled modules in.
GROUP = "labchat._mypyc_shared"


class CompileError(Exception):
    """The compiled build cannot be made here; the message is one line for the user."""


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _built_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name.endswith(tuple(EXTENSION_SUFFIXES))]


def missing_toolchain() -> str | None:
    """Why the compiled build cannot be made on this machine, or None if it can."""
    if importlib.util.find_spec("mypyc") is None or importlib.util.find_spec("setuptools") is None:
        return "the compiled build needs mypy and setuptools: pip install 'labchat[compile]'"
    if shutil.which(os.environ.get("CC", "cc")) is None and shutil.which("gcc") is None:
        return "the compiled build needs a C compiler (cc or gcc) on the PATH"
    return None


def build() -> list[str]:
    """Compile MODULES into the package; returns their names. Raises CompileError."""
    if (missing := missing_toolchain()) is not None:
        raise CompileError(missing)
    from mypyc.build import mypycify
    from setuptools import setup

    clean()
    with tempfile.TemporaryDirectory(prefix="labchat-compile-") as tmp:
        # Built in a copy of the package: no project file of ours is read, nothing is left behind
        # but the extension modules, copied next to their sources below.
        work = Path(tmp)
        shutil.copytree(PACKAGE, work / "labchat", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        here = Path.cwd()
        os.chdir(work)
        try:
            paths = [f"labchat/{m}" for m in MODULES]
            extensions = mypycify(paths, opt_level="3", group_name=GROUP)
            setup(name="labchat-compiled", ext_modules=extensions,
                  script_args=["--quiet", "build_ext", "--inplace"])
        except SystemExit as exc:  # setuptools reports a failed compiler run this way
            raise CompileError(f"compiling failed: {exc}") from None
        finally:
            os.chdir(here)
        built = _built_files(work / "labchat")
        if not built:
            raise CompileError("compiling produced no extension module")
        for path in built:
            target = PACKAGE / path.relative_to(work / "labchat")
            shutil.copy2(path, target)
    MANIFEST.write_text(json.dumps({m: _digest(PACKAGE / m) for m in MODULES}, indent=1) + "\n")
    return [m.removesuffix(".py").replace("/", ".") for m in MODULES]


def clean() -> int:
    """Remove every compiled module and the manifest; returns how many files went."""
    gone = 0
    for path in _built_files(PACKAGE):
        path.unlink()
        gone += 1
    if MANIFEST.exists():
        MANIFEST.unlink()
        gone += 1
    return gone


def status() -> str:
    """"pure Python", "compiled (mypyc)", or which compiled modules are stale."""
    if not MANIFEST.exists() or not _built_files(PACKAGE):
        return "pure Python"
    try:
        recorded = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return "compiled (mypyc), manifest unreadable: run make fast again"
    stale = [m for m, digest in recorded.items()
             if not (PACKAGE / m).exists() or _digest(PACKAGE / m) != digest]
    if stale:
        return (f"compiled (mypyc) but STALE, sources changed since: {', '.join(stale)}: "
                "run make fast again, or make pure for pure Python")
    return "compiled (mypyc)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labchat.compile", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--clean", action="store_true", help="remove the compiled modules")
    group.add_argument("--status", action="store_true", help="say whether compiled modules are in use")
    args = parser.parse_args(argv)
    if args.status:
        print(status())
        return 0
    if args.clean:
        print(f"removed {clean()} file(s): labchat runs as pure Python")
        return 0
    try:
        names = build()
    except CompileError as exc:
        print(f"labchat.compile: {exc}", file=sys.stderr)
        return 1
    print(f"compiled {len(names)} modules with mypyc: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
