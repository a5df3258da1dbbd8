"""`labchat-admin grant/revoke/list` and `labchat-server --class-password`'s refusal to start blind."""

from __future__ import annotations

from pathlib import Path

import pytest

from labchat.server import admin, cli
from labchat.server.store import Store


def test_grant_list_revoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "server.db"
    monkeypatch.setenv("LABCHAT_PASSWORD", "secret")
    assert admin.main(["--db", str(db), "add", "Teacher"]) == 0
    assert admin.main(["--db", str(db), "add", "bob"]) == 0
    assert admin.main(["--db", str(db), "grant", "teacher"]) == 0
    assert "Teacher is now a server admin" in capsys.readouterr().out
    assert admin.main(["--db", str(db), "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("bob\t") and not lines[0].endswith("admin")
    assert lines[1].startswith("Teacher\t") and lines[1].endswith("\tadmin")
    assert admin.main(["--db", str(db), "revoke", "TEACHER"]) == 0
    assert "no longer" in capsys.readouterr().out
    assert admin.main(["--db", str(db), "grant", "nobody"]) == 1
    assert capsys.readouterr().err == "labchat-admin: no account named 'nobody'\n"
    store = Store(db)
    assert store.list_admins() == []


def test_class_password_without_env_or_terminal_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LABCHAT_CLASS_PASSWORD", raising=False)
    assert cli.main(["127.0.0.1", "-p", "0", "--class-password"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "LABCHAT_CLASS_PASSWORD" in err
    monkeypatch.setenv("LABCHAT_CLASS_PASSWORD", "")
    assert cli.main(["127.0.0.1", "-p", "0", "--class-password"]) == 2
    assert capsys.readouterr().err == "labchat-server: the class password cannot be empty\n"
