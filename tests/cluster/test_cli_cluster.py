"""`labchat-server --cluster URLS --key PATH`: bad values are one line; the shared key and the
ticket key derived from it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labchat.server import cli
from labchat.server.cluster.connection import parse_urls
from labchat.server.keys import load_or_create_server_key
from labchat.server.tickets import TicketBook, derive_ticket_key


@pytest.mark.parametrize("value", ["", ",", "http://x:4222", "a:b", "nats://:4222", "nats://h", "nats://h:0"])
def test_a_bad_cluster_is_one_line(value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["127.0.0.1", "--db", str(tmp_path / "s.db"), "--cluster", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("labchat-server: --cluster:") and "\n" not in err
    assert not (tmp_path / "s.db").exists()


def test_cluster_addresses_parse() -> None:
    assert parse_urls("nats://10.0.0.1:4222, 10.0.0.2:4222,tls://n3.lab:4443") == [
        "nats://10.0.0.1:4222", "nats://10.0.0.2:4222", "tls://n3.lab:4443",
    ]  # fmt: skip


@given(st.text(max_size=60))
def test_any_cluster_text_parses_or_is_refused_with_value_error(text: str) -> None:
    try:
        urls = parse_urls(text)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert urls and all(u.startswith(("nats://", "tls://")) for u in urls)


def test_an_unreachable_cluster_at_start_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "CLUSTER_CONNECT_S", 1.0)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = str(tmp_path / "s.db")
    assert cli.main(["127.0.0.1", "-p", "0", "--db", db, "--cluster", f"127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("labchat-server: cannot reach the cluster at") and "\n" not in err


def test_every_relay_derives_the_same_ticket_key_from_the_shared_key(tmp_path: Path) -> None:
    key = load_or_create_server_key(tmp_path / "cluster.key")
    one, other = derive_ticket_key(key), derive_ticket_key(bytes(key))
    assert one == other and len(one) == 32 and one != key
    assert derive_ticket_key(load_or_create_server_key(tmp_path / "other.key")) != one
    public = b"p" * 32
    ticket = TicketBook(one, public).issue("alice", b"salt", 1000.0)
    assert TicketBook(other, public).open(ticket, "alice", b"salt", 1001.0)


def test_relays_whose_databases_share_a_folder_keep_files_apart(tmp_path: Path) -> None:
    from labchat.server.cli import _files_dir

    a, b = tmp_path / "a.db", tmp_path / "b.db"
    assert _files_dir(None, a, clustered=True) != _files_dir(None, b, clustered=True)
    assert _files_dir(None, a, clustered=True) == tmp_path / "a-files"
    assert _files_dir(None, a, clustered=False) is None  # a single server: `files` beside it, as before
    assert _files_dir(tmp_path / "mine", a, clustered=True) == tmp_path / "mine"
