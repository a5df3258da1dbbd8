"""The optional compiled build (`make fast`): it builds, it is what Python imports, and the protocol
tests pass against it. Runs on a copy of the project, so the checkout stays as it was."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labchat import compile as compiled

ROOT = Path(__file__).resolve().parent.parent

needs_toolchain = pytest.mark.skipif(
    compiled.missing_toolchain() is not None, reason=str(compiled.missing_toolchain())
)


def _run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@needs_toolchain
@pytest.mark.timeout(400)
def test_compiled_build_passes_the_protocol_tests(tmp_path: Path) -> None:
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "_compiled.json", "snapshots", "__snapshots__")
    shutil.copytree(ROOT / "labchat", project / "labchat", ignore=ignore)
    shutil.copytree(ROOT / "tests", project / "tests", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", project)  # pytest's settings

    assert _run(["-m", "labchat.compile", "--status"], project, 30).stdout.strip() == "pure Python"
    built = _run(["-m", "labchat.compile"], project, 300)
    assert built.returncode == 0, built.stderr[-2000:]
    assert built.stdout.splitlines()[-1].startswith(f"compiled {len(compiled.MODULES)} modules with mypyc")
    where = _run(["-c", "import labchat.protocol.reliability as m; print(m.__file__)"], project, 30)
    assert where.stdout.strip().endswith(tuple(compiled.EXTENSION_SUFFIXES))  # the compiled one
    assert _run(["-m", "labchat.compile", "--status"], project, 30).stdout.strip() == "compiled (mypyc)"

    tests = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/protocol"], project, 300)
    assert tests.returncode == 0, tests.stdout[-3000:]

    # An edited source makes its compiled module stale, and the status says so.
    source = project / "labchat" / "protocol" / "text.py"
    source.write_text(source.read_text() + "\n# edited\n")
    assert "STALE" in _run(["-m", "labchat.compile", "--status"], project, 30).stdout
    cleaned = _run(["-m", "labchat.compile", "--clean"], project, 30)
    assert cleaned.returncode == 0
    assert _run(["-m", "labchat.compile", "--status"], project, 30).stdout.strip() == "pure Python"


def test_without_the_toolchain_it_is_one_clear_line(capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    assert compiled.main([]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("labchat.compile: the compiled build needs")
